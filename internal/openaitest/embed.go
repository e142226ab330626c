package openaitest

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// embedRequest holds the fields of CreateEmbeddingRequest the server uses;
// the body has been validated against the schema before parsing.
type embedRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// embedInput is one input to embed: its text (the key of its vector) and
// its token count.
type embedInput struct {
	key    string
	tokens int
	empty  bool
}

// parseInputs decodes "input" in any form the description allows: a
// string, an array of strings, an array of token ids, or an array of arrays
// of token ids.
func parseInputs(raw json.RawMessage) ([]embedInput, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []embedInput{textInput(one)}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		in := make([]embedInput, len(many))
		for i, s := range many {
			in[i] = textInput(s)
		}
		return in, nil
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil {
		return []embedInput{tokenInput(ids)}, nil
	}
	var idLists [][]int64
	if err := json.Unmarshal(raw, &idLists); err != nil {
		return nil, fmt.Errorf("decoding input: %w", err)
	}
	in := make([]embedInput, len(idLists))
	for i, l := range idLists {
		in[i] = tokenInput(l)
	}
	return in, nil
}

func textInput(s string) embedInput {
	return embedInput{key: s, tokens: tokens(s), empty: s == ""}
}

func tokenInput(ids []int64) embedInput {
	var b strings.Builder
	b.WriteString(tokenKeyPrefix)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return embedInput{key: b.String(), tokens: len(ids), empty: len(ids) == 0}
}

// embedResponse is a CreateEmbeddingResponse; Embedding is []float32 or,
// for encoding_format base64, a string.
type embedResponse struct {
	Object string           `json:"object"`
	Data   []embeddingDatum `json:"data"`
	Model  string           `json:"model"`
	Usage  embedUsage       `json:"usage"`
}

type embeddingDatum struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

type embedUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// requestError is an error answer a request earns: in OpenAI's words (err), or, when raw is
// set, in another server's (Config.Flavor), written as it is.
type requestError struct {
	status int
	err    apiError
	raw    any
}

// llamaCppError is llama.cpp's llama-server's error answer: status, with {"error": {"code":
// status, "message": msg, "type": typ}} (tools/server/server-common.cpp, format_error_response).
func llamaCppError(status int, typ, msg string) *requestError {
	return &requestError{status: status, raw: map[string]any{"error": map[string]any{
		"code": status, "message": msg, "type": typ,
	}}}
}

// vllmBadRequest is vLLM's 400 BadRequestError with msg, as its ErrorResponse: {"object":
// "error", "message", "type", "param", "code": 400}.
func vllmBadRequest(msg string) *requestError {
	return &requestError{status: http.StatusBadRequest, raw: map[string]any{
		"object": "error", "message": msg, "type": "BadRequestError", "param": nil, "code": http.StatusBadRequest,
	}}
}

// teiError is Hugging Face text-embeddings-inference's error answer on its OpenAI-compatible
// route: status, with {"message": msg, "code": status, "type": typ}
// (huggingface/text-embeddings-inference router/src/http/types.rs, OpenAICompatErrorResponse;
// typ is its ErrorType's name, "Validation" for the 413s of router/src/http/server.rs's
// From<&ErrorType> for StatusCode).
func teiError(status int, typ, msg string) *requestError {
	return &requestError{status: status, raw: map[string]any{"message": msg, "code": status, "type": typ}}
}

// geminiError is the error answer of Gemini's OpenAI compatibility: status, with Google's
// error object in a list, [{"error": {"code": status, "message": msg, "status": st}}] (as
// quoted in FuzzAnything/PromptFuzz#42 and SuzumiyaAkizuki/ComfyUI-NewBie-LLM-Formatter#3).
func geminiError(status int, st, msg string) *requestError {
	return &requestError{status: status, raw: []any{map[string]any{"error": map[string]any{
		"code": status, "message": msg, "status": st,
	}}}}
}

// Flavors of Config.Flavor: the servers whose answers the fake can give.
const (
	FlavorOpenAI   = "openai"
	FlavorLlamaCpp = "llama.cpp"
	FlavorVLLM     = "vllm"
	// FlavorTEI is Hugging Face text-embeddings-inference (TEI), an embeddings server.
	FlavorTEI = "tei"
	// FlavorAzure is Azure OpenAI.
	FlavorAzure = "azure"
	// FlavorGemini is Gemini's OpenAI compatibility
	// (https://generativelanguage.googleapis.com/v1beta/openai/).
	FlavorGemini = "gemini"
	// FlavorMistral is Mistral's API (https://api.mistral.ai/v1).
	FlavorMistral = "mistral"
	// FlavorOpenRouter is OpenRouter (https://openrouter.ai/api/v1).
	FlavorOpenRouter = "openrouter"
	// FlavorOllama is Ollama's OpenAI compatibility (http://localhost:11434/v1).
	FlavorOllama = "ollama"
	// FlavorLiteLLM is LiteLLM's proxy in front of an embedding model of a provider it does
	// not pass "encoding_format" to: Gemini, Vertex AI, Bedrock (see unsupportedEncoding).
	FlavorLiteLLM = "litellm"
)

// flavors are the values Config.Flavor may take besides "".
var flavors = []string{FlavorOpenAI, FlavorLlamaCpp, FlavorVLLM, FlavorTEI, FlavorAzure, FlavorGemini, FlavorMistral, FlavorLiteLLM, FlavorOpenRouter, FlavorOllama}

// unsupportedEncoding is LiteLLM's proxy's answer to an embeddings request with an
// "encoding_format" (whatever its value: "base64", or "float", the OpenAI SDKs' default) for
// a model of a provider whose LiteLLM configuration does not list the parameter — Gemini,
// Vertex AI, Bedrock — unless the proxy is set to drop_params: 400, {"error": {"message":
// "litellm.UnsupportedParamsError: vertex_ai does not support parameters: {'encoding_format':
// 'base64'}, for model=…. To drop these, …", "type": "None", "param": null, "code": "400"}}
// (BerriAI/litellm litellm/utils.py, _check_valid_arg; issues #7358, #14685, #33173).
func unsupportedEncoding(format, model string) *requestError {
	return &requestError{status: http.StatusBadRequest, raw: map[string]any{"error": map[string]any{
		"message": fmt.Sprintf("litellm.UnsupportedParamsError: vertex_ai does not support parameters: {'encoding_format': '%s'}, for model=%s. "+
			"To drop these, set `litellm.drop_params=True` or for proxy:\n\n`litellm_settings:\n drop_params: true`\n", format, model),
		"type": "None", "param": nil, "code": "400",
	}}}
}

// tooManyInputs is the answer to an embeddings request of n inputs, more than MaxInputs, as
// Config.Flavor's server gives it:
//
//   - OpenAI (and the others): 400, the published description's refusal of the input.
//   - TEI: 413 Validation, "batch size N > maximum allowed batch size M", M being its
//     --max-client-batch-size, 32 unless set (router/src/main.rs; router/src/http/server.rs,
//     openai_embed).
//   - Azure OpenAI: 400 invalid_request_error, "Too many inputs. The max number of inputs is
//     M.  We hope to increase the number of inputs per request soon. …", M 16 or 1 for some
//     deployments of text-embedding-ada-002 (as quoted in langchain-ai/langchain#4575 and
//     #9112, Mintplex-Labs/anything-llm#184, Azure/azure-search-vector-samples#190).
//   - Gemini: 400 INVALID_ARGUMENT, "* BatchEmbedContentsRequest.requests: at most M requests
//     can be in one batch", M 100 (its batchEmbedContents' limit, which its OpenAI
//     compatibility and OpenRouter's Google models answer alike), as Google's error object in a
//     list (see geminiError).
func (s *Server) tooManyInputs(n int) *requestError {
	limit := s.cfg.MaxInputs
	switch s.cfg.Flavor {
	case FlavorGemini:
		return geminiError(http.StatusBadRequest, "INVALID_ARGUMENT",
			fmt.Sprintf("* BatchEmbedContentsRequest.requests: at most %d requests can be in one batch\n", limit))
	case FlavorTEI:
		return teiError(http.StatusRequestEntityTooLarge, "Validation",
			fmt.Sprintf("batch size %d > maximum allowed batch size %d", n, limit))
	case FlavorAzure:
		return &requestError{status: http.StatusBadRequest, err: apiError{
			Message: fmt.Sprintf("Too many inputs. The max number of inputs is %d.  We hope to increase the number of inputs per request soon. "+
				"Please contact us through an Azure support request at: https://go.microsoft.com/fwlink/?linkid=2213926 for further questions.", limit),
			Type: "invalid_request_error",
		}}
	}
	return &requestError{status: http.StatusBadRequest, err: apiError{
		Message: "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
		Type:    "invalid_request_error",
	}}
}

// contextError is the answer to an embeddings input of tokens tokens, more than
// ContextTokens, as Config.Flavor's server gives it:
//
//   - OpenAI: 400 invalid_request_error, "This model's maximum context length is …".
//   - llama.cpp's llama-server: 500 server_error, "input (N tokens) is too large to process.
//     increase the physical batch size (current batch size: L)". An embedding model's input
//     must fit one physical batch (-ub, 512 tokens unless set): tools/server/server-context.cpp,
//     update_slots, `if (!slot.can_split()) { if (slot.task->n_tokens() > n_ubatch)
//     send_error(…, ERROR_TYPE_SERVER)`, which format_error_response
//     (tools/server/server-common.cpp) answers as {"error": {"code": 500, "message": …,
//     "type": "server_error"}} with status 500.
//   - vLLM: 400 BadRequestError, "This model's maximum context length is L tokens. However,
//     you requested N tokens in the input for embedding generation. Please reduce the length
//     of the input." (vllm-project/vllm 7ded96b, vllm/entrypoints/openai/serving_engine.py,
//     _validate_input; create_error_response), as its ErrorResponse: {"object": "error",
//     "message", "type", "param", "code": 400} (later versions wrap it in "error").
//   - TEI, not started with --auto-truncate (the default): 413 Validation, "Input validation
//     error: `inputs` must have less than L tokens. Given: N" (core/src/tokenization.rs,
//     encode_input; TextEmbeddingsError::Validation's text in core/src/lib.rs), for the whole
//     request when one of its inputs is too long.
//   - Ollama: 400 invalid_request_error, "the input length exceeds the context length", for the
//     whole request, with no lengths: its answer when it does not cut the input to the model's
//     context itself (its "truncate" unset or false, and some inputs with it, as reported of
//     0.12 and later: a query of mxbai-embed-large refused at /v1/embeddings, in OpenClaw's
//     memory-lancedb documentation), in the OpenAI shape its compatibility layer gives errors.
func (s *Server) contextError(tokens int) *requestError {
	limit := s.cfg.ContextTokens
	switch s.cfg.Flavor {
	case FlavorLlamaCpp:
		return llamaCppError(http.StatusInternalServerError, "server_error",
			fmt.Sprintf("input (%d tokens) is too large to process. increase the physical batch size (current batch size: %d)", tokens, limit))
	case FlavorVLLM:
		return vllmBadRequest(fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens in the input for embedding generation. Please reduce the length of the input.",
			limit, tokens))
	case FlavorTEI:
		return teiError(http.StatusRequestEntityTooLarge, "Validation",
			fmt.Sprintf("Input validation error: `inputs` must have less than %d tokens. Given: %d", limit, tokens))
	case FlavorOllama:
		return &requestError{status: http.StatusBadRequest, err: apiError{
			Message: "the input length exceeds the context length", Type: "invalid_request_error"}}
	}
	return &requestError{status: http.StatusBadRequest, err: apiError{
		Message: fmt.Sprintf("This model's maximum context length is %d tokens, however you requested %d tokens (%d in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
			limit, tokens, tokens),
		Type: "invalid_request_error",
	}}
}

// nativeDimensions is the length of the vectors OpenAI's embedding models
// answer to a request without "dimensions", or 0 for a model the server does
// not know (which gets Config.Dimensions).
func nativeDimensions(model string) int {
	switch model {
	case "text-embedding-3-small", "text-embedding-ada-002":
		return 1536
	case "text-embedding-3-large":
		return 3072
	}
	return 0
}

// dimensions is the length of the vectors answered to req: its "dimensions",
// else the model's native length, else Config.Dimensions.
func (s *Server) dimensions(req embedRequest) int {
	if req.Dimensions != nil {
		return *req.Dimensions
	}
	if n := nativeDimensions(req.Model); n > 0 {
		return n
	}
	return s.cfg.Dimensions
}

// checkEmbedRequest applies the limits the schema does not express:
// text-embedding-ada-002 refuses "dimensions", as from OpenAI (only the
// text-embedding-3 models can shorten their vectors), a text-embedding-3 model
// refuses "dimensions" above its native length (it cannot lengthen them; a 400
// from OpenAI too, in the fake's words), and the inputs' count and sizes are
// bounded.
func (s *Server) checkEmbedRequest(req embedRequest, inputs []embedInput) (total int, rerr *requestError) {
	if req.EncodingFormat != "" && s.cfg.Flavor == FlavorLiteLLM {
		return 0, unsupportedEncoding(req.EncodingFormat, req.Model)
	}
	if req.Dimensions != nil && s.cfg.Flavor == FlavorVLLM {
		// vLLM refuses "dimensions" for a model whose config does not say it is Matryoshka
		// (is_matryoshka), whatever the value: as for BAAI/bge-m3, which the fake's vLLM
		// serves all its models as (vllm/pooling_params.py, PoolingParams.verify; the body as
		// vLLM's docs quote it, docs/models/pooling_models.md "Matryoshka Embeddings").
		return 0, vllmBadRequest(fmt.Sprintf("Model %q does not support matryoshka representation, changing output dimensions will lead to poor results.", req.Model))
	}
	if req.Dimensions != nil && req.Model == "text-embedding-ada-002" {
		return 0, &requestError{status: http.StatusBadRequest, err: apiError{
			Message: "This model does not support specifying dimensions.",
			Type:    "invalid_request_error",
		}}
	}
	if n := nativeDimensions(req.Model); n > 0 && req.Dimensions != nil && strings.HasPrefix(req.Model, "text-embedding-3-") && *req.Dimensions > n {
		return 0, &requestError{status: http.StatusBadRequest, err: apiError{
			Message: fmt.Sprintf("Invalid value for 'dimensions' = %d: %s supports at most %d.", *req.Dimensions, req.Model, n),
			Type:    "invalid_request_error",
		}}
	}
	invalid := &requestError{status: http.StatusBadRequest, err: apiError{
		Message: "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
		Type:    "invalid_request_error",
	}}
	if len(inputs) > s.cfg.MaxInputs {
		return 0, s.tooManyInputs(len(inputs))
	}
	for _, in := range inputs {
		if in.empty {
			return 0, invalid
		}
		if in.tokens > s.cfg.ContextTokens {
			return 0, s.contextError(in.tokens)
		}
		total += in.tokens
	}
	if total > s.cfg.MaxRequestTokens && s.cfg.Flavor == FlavorMistral {
		// Mistral's embeddings endpoint bounds a request's tokens, all inputs together, and
		// its refusal does not say the bound (measured at 8,192 to 65,536 tokens by its
		// users): 400 {"object": "error", "message": "Too many tokens overall, split into more
		// batches.", "type": "invalid_request_prompt", "param": null, "code": "3210",
		// "raw_status_code": 400}, as quoted in edgequake's and others' reports of it.
		return 0, &requestError{status: http.StatusBadRequest, raw: map[string]any{
			"object": "error", "message": "Too many tokens overall, split into more batches.", "type": "invalid_request_prompt",
			"param": nil, "code": "3210", "raw_status_code": http.StatusBadRequest,
		}}
	}
	if total > s.cfg.MaxRequestTokens {
		return 0, &requestError{status: http.StatusBadRequest, err: apiError{
			Message: fmt.Sprintf("Requested %d tokens, max %d tokens per request", total, s.cfg.MaxRequestTokens),
			Type:    "max_tokens_per_request", Code: ptr("max_tokens_per_request"),
		}}
	}
	return total, nil
}

// serveEmbeddings answers POST /v1/embeddings.
func (s *Server) serveEmbeddings(w http.ResponseWriter, r *http.Request, _ []string) {
	s.mu.Lock()
	s.stats.EmbedRequests++
	s.mu.Unlock()
	body := s.readJSONBody(w, r, schemaEmbedRequest)
	if body == nil {
		return
	}
	var req embedRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.invalidRequest(w, fmt.Sprintf("Invalid request body: %v", err))
		return
	}
	inputs, err := parseInputs(req.Input)
	if err != nil {
		s.invalidRequest(w, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
		return
	}
	total, rerr := s.checkEmbedRequest(req, inputs)
	if rerr != nil {
		s.writeRequestError(w, rerr)
		return
	}
	if s.cfg.EmbedFailsOn != nil {
		for _, in := range inputs {
			if s.cfg.EmbedFailsOn(in.key) {
				s.writeError(w, http.StatusInternalServerError, apiError{
					Message: "failed to encode response: json: unsupported value: NaN", Type: "api_error",
				})
				return
			}
		}
	}
	fault, f := s.drawFault(false)
	if fault == FaultRateLimit {
		s.rateLimited(w, false, req.Model, int64(total), f)
		return
	}
	if !s.latency(w, r, s.cfg.EmbedLatency) {
		return
	}
	s.setRateHeaders(w, false, int64(total), false, 0)
	switch fault {
	case FaultServerError:
		s.serverError(w)
		return
	case FaultTimeout:
		s.timedOut(w, r, f.TimeoutHold)
		return
	}
	out := s.embed(req, inputs, total)
	if s.writeResult(w, out, fault) {
		s.deliveredEmbeddings(req, inputs, total)
	}
}

// writeRequestError writes e: in OpenAI's words, validated (writeError), or another server's
// body as it is.
func (s *Server) writeRequestError(w http.ResponseWriter, e *requestError) {
	if e.raw == nil {
		s.writeError(w, e.status, e.err)
		return
	}
	body, err := json.Marshal(e.raw)
	if err != nil {
		panic(err) // cannot happen: strings and numbers
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// deliveredEmbeddings counts delivered vectors.
func (s *Server) deliveredEmbeddings(req embedRequest, inputs []embedInput, promptTokens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.EmbedInputsDelivered += int64(len(inputs))
	for _, in := range inputs {
		s.recordDeliveryLocked(embedKey(req, in), KindEmbedding, in.key)
	}
	s.stats.PromptTokens += int64(promptTokens)
}

// embed builds the response body for a checked request.
//
// The response is validated against CreateEmbeddingResponse in its float
// form with each vector cut to its first few numbers: the schema checks
// every number of the array alike, and validating all of them cost about
// 4 ms per 1536-dimension vector, more than the rest of the server. The
// published description does not describe the base64 form (a string in
// place of the array), so a base64 body is the validated float body with
// each vector encoded.
func (s *Server) embed(req embedRequest, inputs []embedInput, total int) []byte {
	dims := s.dimensions(req)
	resp := embedResponse{
		Object: "list",
		Data:   make([]embeddingDatum, len(inputs)),
		Model:  req.Model,
		Usage:  embedUsage{PromptTokens: total, TotalTokens: total},
	}
	vecs := make([][]float32, len(inputs))
	for i, in := range inputs {
		vecs[i] = s.vector(in.key, dims)
		resp.Data[i] = embeddingDatum{Object: "embedding", Index: i, Embedding: vecs[i][:min(len(vecs[i]), validatedDims)]}
	}
	s.marshalValidated(schemaEmbedResponse, "POST /v1/embeddings", resp)
	for i, v := range vecs {
		if req.EncodingFormat == "base64" {
			resp.Data[i].Embedding = base64.StdEncoding.EncodeToString(float32Bytes(v))
		} else {
			resp.Data[i].Embedding = v
		}
	}
	body, err := json.Marshal(resp)
	if err != nil {
		panic(fmt.Sprintf("openaitest: encoding embeddings: %v", err))
	}
	return body
}

// validatedDims is how many numbers of each vector response validation
// sees.
const validatedDims = 8

// float32Bytes encodes v as OpenAI's base64 embeddings do: little-endian
// IEEE 754 float32s.
func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
