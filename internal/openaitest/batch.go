package openaitest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// storedFile is an uploaded or generated file.
type storedFile struct {
	meta    fileObject
	content []byte
}

// fileObject is an OpenAIFile.
type fileObject struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int    `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt *int64 `json:"expires_at,omitempty"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
}

// batchObject is a Batch.
type batchObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Model            string            `json:"model,omitempty"`
	Errors           *batchErrors      `json:"errors,omitempty"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     string            `json:"output_file_id,omitempty"`
	ErrorFileID      string            `json:"error_file_id,omitempty"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     int64             `json:"in_progress_at,omitempty"`
	ExpiresAt        int64             `json:"expires_at,omitempty"`
	FinalizingAt     int64             `json:"finalizing_at,omitempty"`
	CompletedAt      int64             `json:"completed_at,omitempty"`
	FailedAt         int64             `json:"failed_at,omitempty"`
	RequestCounts    batchCounts       `json:"request_counts"`
	Usage            *batchUsage       `json:"usage,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
}

type batchErrors struct {
	Object string       `json:"object"`
	Data   []batchError `json:"data"`
}

type batchError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   any    `json:"param"`
	Line    *int   `json:"line"`
}

type batchCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

type batchUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// batchState is a batch and its input, guarded by Server.mu.
type batchState struct {
	obj batchObject
}

// serveCreateFile answers POST /v1/files (multipart upload).
func (s *Server) serveCreateFile(w http.ResponseWriter, r *http.Request, _ []string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFileBody)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		s.invalidRequest(w, fmt.Sprintf("Could not parse multipart form: %v", err))
		return
	}
	defer r.MultipartForm.RemoveAll()
	purpose := r.FormValue("purpose")
	f, hdr, err := r.FormFile("file")
	var content []byte
	if err == nil {
		content, err = io.ReadAll(f)
		f.Close()
	}
	if err != nil && !errors.Is(err, http.ErrMissingFile) {
		s.invalidRequest(w, fmt.Sprintf("Could not read the uploaded file: %v", err))
		return
	}
	// The description types the multipart form as an object; validate its
	// fields as such.
	form := map[string]any{"purpose": purpose}
	if hdr != nil {
		form["file"] = string(content)
	}
	if purpose == "" {
		delete(form, "purpose")
	}
	if err := s.val.validateValue(schemaFileRequest, form); err != nil {
		s.recordViolation("request %s %s: %v", r.Method, r.URL.Path, err)
		s.invalidRequest(w, fmt.Sprintf("Invalid request: %v", err))
		return
	}
	meta := s.storeFile(hdr.Filename, purpose, content)
	s.writeValidated(w, schemaFile, "POST /v1/files", meta)
}

// storeFile keeps a file and returns its object.
func (s *Server) storeFile(name, purpose string, content []byte) fileObject {
	id := s.nextID("file-openaitest")
	s.mu.Lock()
	defer s.mu.Unlock()
	meta := fileObject{
		ID: id, Object: "file", Bytes: len(content), CreatedAt: s.clock().Unix(),
		Filename: name, Purpose: purpose, Status: "processed",
	}
	s.files[id] = &storedFile{meta: meta, content: content}
	return meta
}

// writeValidated writes a 200 JSON body validated against schema.
func (s *Server) writeValidated(w http.ResponseWriter, schema, what string, v any) {
	body := s.marshalValidated(schema, what, v)
	s.writeResult(w, body, "")
}

func (s *Server) noSuch(w http.ResponseWriter, kind, id string) {
	s.writeError(w, http.StatusNotFound, apiError{
		Message: fmt.Sprintf("No such %s: %s", kind, id), Type: "invalid_request_error", Param: ptr("id"),
	})
}

// serveGetFile answers GET /v1/files/{file_id}.
func (s *Server) serveGetFile(w http.ResponseWriter, _ *http.Request, parts []string) {
	s.mu.Lock()
	f := s.files[parts[1]]
	s.mu.Unlock()
	if f == nil {
		s.noSuch(w, "File object", parts[1])
		return
	}
	s.writeValidated(w, schemaFile, "GET /v1/files/{file_id}", f.meta)
}

// serveDeleteFile answers DELETE /v1/files/{file_id}.
func (s *Server) serveDeleteFile(w http.ResponseWriter, _ *http.Request, parts []string) {
	s.mu.Lock()
	f := s.files[parts[1]]
	delete(s.files, parts[1])
	s.mu.Unlock()
	if f == nil {
		s.noSuch(w, "File object", parts[1])
		return
	}
	s.writeValidated(w, schemaFileDeleted, "DELETE /v1/files/{file_id}", map[string]any{"id": parts[1], "object": "file", "deleted": true})
}

// Files returns the ids of the files the server holds (uploaded, or written by its batches)
// and not deleted.
func (s *Server) Files() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.files))
	for id := range s.files {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// serveFileContent answers GET /v1/files/{file_id}/content.
func (s *Server) serveFileContent(w http.ResponseWriter, _ *http.Request, parts []string) {
	s.mu.Lock()
	f := s.files[parts[1]]
	s.mu.Unlock()
	if f == nil {
		s.noSuch(w, "File object", parts[1])
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Request-Id", s.nextID("req_"))
	_, _ = w.Write(f.content)
}

// serveCreateBatch answers POST /v1/batches and starts processing.
func (s *Server) serveCreateBatch(w http.ResponseWriter, r *http.Request, _ []string) {
	body := s.readJSONBody(w, r, schemaBatchRequest)
	if body == nil {
		return
	}
	var req struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.invalidRequest(w, fmt.Sprintf("Invalid request body: %v", err))
		return
	}
	if req.Endpoint != "/v1/chat/completions" && req.Endpoint != "/v1/embeddings" {
		s.writeError(w, http.StatusBadRequest, apiError{
			Message: fmt.Sprintf("Endpoint %s is not supported by this test server; use /v1/chat/completions or /v1/embeddings.", req.Endpoint),
			Type:    "invalid_request_error", Param: ptr("endpoint"),
		})
		return
	}
	s.mu.Lock()
	in := s.files[req.InputFileID]
	s.mu.Unlock()
	if in == nil {
		s.noSuch(w, "File object", req.InputFileID)
		return
	}
	if in.meta.Purpose != "batch" {
		s.writeError(w, http.StatusBadRequest, apiError{
			Message: fmt.Sprintf("File %s has purpose %q; a batch input file must have purpose \"batch\".", in.meta.ID, in.meta.Purpose),
			Type:    "invalid_request_error", Param: ptr("input_file_id"),
		})
		return
	}
	now := s.clock().Unix()
	obj := batchObject{
		ID: s.nextID("batch_openaitest"), Object: "batch", Endpoint: req.Endpoint,
		InputFileID: req.InputFileID, CompletionWindow: req.CompletionWindow,
		Status: "validating", CreatedAt: now, ExpiresAt: now + 24*3600, Metadata: req.Metadata,
	}
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		s.serverError(w)
		return
	default:
	}
	s.batches[obj.ID] = &batchState{obj: obj}
	s.work.Add(1)
	s.mu.Unlock()
	go s.runBatch(obj.ID, in.content)
	s.writeValidated(w, schemaBatch, "POST /v1/batches", obj)
}

// serveGetBatch answers GET /v1/batches/{batch_id}.
func (s *Server) serveGetBatch(w http.ResponseWriter, _ *http.Request, parts []string) {
	s.mu.Lock()
	b := s.batches[parts[1]]
	var obj batchObject
	if b != nil {
		obj = b.obj
	}
	s.mu.Unlock()
	if b == nil {
		s.noSuch(w, "batch", parts[1])
		return
	}
	s.writeValidated(w, schemaBatch, "GET /v1/batches/{batch_id}", obj)
}

// batchList is a ListBatchesResponse.
type batchList struct {
	Object  string        `json:"object"`
	Data    []batchObject `json:"data"`
	FirstID string        `json:"first_id,omitempty"`
	LastID  string        `json:"last_id,omitempty"`
	HasMore bool          `json:"has_more"`
}

// serveListBatches answers GET /v1/batches: the batches newest first (ids are
// made in creation order), at most limit of them (1-100, default 20) after
// the batch whose id is after, when given.
func (s *Server) serveListBatches(w http.ResponseWriter, r *http.Request, _ []string) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			s.invalidRequest(w, fmt.Sprintf("Invalid 'limit': %q; expected an integer between 1 and 100.", v))
			return
		}
		limit = n
	}
	s.mu.Lock()
	all := make([]batchObject, 0, len(s.batches))
	for _, b := range s.batches {
		all = append(all, b.obj)
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b batchObject) int { return strings.Compare(b.ID, a.ID) })
	if after := q.Get("after"); after != "" {
		i := slices.IndexFunc(all, func(b batchObject) bool { return b.ID == after })
		if i < 0 {
			s.noSuch(w, "batch", after)
			return
		}
		all = all[i+1:]
	}
	list := batchList{Object: "list", Data: all[:min(limit, len(all))], HasMore: len(all) > limit}
	if len(list.Data) > 0 {
		list.FirstID, list.LastID = list.Data[0].ID, list.Data[len(list.Data)-1].ID
	}
	s.writeValidated(w, schemaBatchList, "GET /v1/batches", list)
}

// updateBatch applies fn to a batch under the lock.
func (s *Server) updateBatch(id string, fn func(*batchObject)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.batches[id].obj)
}

// pause waits one batch step; it reports false when the server closes.
func (s *Server) pause() bool {
	t := time.NewTimer(s.batchStepDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closed:
		return false
	}
}

// batchLine is one request line of a batch input file.
type batchLine struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// batchResult is one line of a batch output or error file.
type batchResult struct {
	ID       string         `json:"id"`
	CustomID string         `json:"custom_id"`
	Response *batchResponse `json:"response"`
	Error    *batchError    `json:"error"`
}

type batchResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// runBatch takes a batch from validating through in_progress to completed
// (or failed), answering each line with the same logic as the HTTP
// endpoints (without faults or latency).
func (s *Server) runBatch(id string, input []byte) {
	defer s.work.Done()
	if !s.pause() {
		return
	}
	var (
		lines   []batchLine
		lineErr []batchError
		ep      string
	)
	s.mu.Lock()
	ep = s.batches[id].obj.Endpoint
	s.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(input))
	sc.Buffer(make([]byte, 0, 1<<20), maxJSONBody)
	n := 0
	for sc.Scan() {
		n++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var l batchLine
		err := json.Unmarshal(raw, &l)
		switch {
		case err != nil:
			lineErr = append(lineErr, batchError{Code: "invalid_json_line", Message: "This line is not parseable as valid JSON.", Line: ptr(n)})
		case l.CustomID == "" || l.Method != http.MethodPost || l.URL != ep:
			lineErr = append(lineErr, batchError{Code: "invalid_request",
				Message: fmt.Sprintf("Each line needs a custom_id, method POST and url %s (the batch's endpoint).", ep), Line: ptr(n)})
		default:
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		lineErr = append(lineErr, batchError{Code: "invalid_file", Message: fmt.Sprintf("Reading the input file: %v", err)})
	}
	if len(lines) == 0 && len(lineErr) == 0 {
		lineErr = append(lineErr, batchError{Code: "empty_file", Message: "The input file is empty."})
	}
	if len(lineErr) > 0 {
		s.updateBatch(id, func(b *batchObject) {
			b.Status, b.FailedAt = "failed", s.clock().Unix()
			b.Errors = &batchErrors{Object: "list", Data: lineErr}
		})
		return
	}
	s.updateBatch(id, func(b *batchObject) {
		b.Status, b.InProgressAt = "in_progress", s.clock().Unix()
		b.RequestCounts.Total = len(lines)
	})
	var out, errOut bytes.Buffer
	var usage batchUsage
	model := ""
	for _, l := range lines {
		select {
		case <-s.closed:
			return
		default:
		}
		status, body, u, m := s.answerBatchLine(ep, l.Body)
		if model == "" {
			model = m
		}
		usage.InputTokens += u.PromptTokens
		usage.OutputTokens += u.CompletionTokens
		res := batchResult{
			ID: s.nextID("batch_req_openaitest"), CustomID: l.CustomID,
			Response: &batchResponse{StatusCode: status, RequestID: s.nextID("req_"), Body: body},
		}
		enc, err := json.Marshal(res)
		if err != nil {
			panic(fmt.Sprintf("openaitest: encoding batch line: %v", err))
		}
		dst := &out
		if status != http.StatusOK {
			dst = &errOut
		}
		dst.Write(enc)
		dst.WriteByte('\n')
		s.updateBatch(id, func(b *batchObject) {
			if status == http.StatusOK {
				b.RequestCounts.Completed++
			} else {
				b.RequestCounts.Failed++
			}
		})
	}
	usage.TotalTokens = usage.InputTokens + usage.OutputTokens
	s.updateBatch(id, func(b *batchObject) {
		b.Status, b.FinalizingAt, b.Model = "finalizing", s.clock().Unix(), model
	})
	if !s.pause() {
		return
	}
	outFile := s.storeFile(id+"_output.jsonl", "batch_output", out.Bytes())
	var errFileID string
	if errOut.Len() > 0 {
		errFileID = s.storeFile(id+"_error.jsonl", "batch_output", errOut.Bytes()).ID
	}
	s.updateBatch(id, func(b *batchObject) {
		b.Status, b.CompletedAt = "completed", s.clock().Unix()
		b.OutputFileID, b.ErrorFileID = outFile.ID, errFileID
		b.Usage = &usage
	})
}

// answerBatchLine answers one batch request body. Successful answers count
// as delivered, like 200s over HTTP.
func (s *Server) answerBatchLine(endpoint string, body json.RawMessage) (int, json.RawMessage, completionUsage, string) {
	var u completionUsage
	fail := func(status int, e apiError) (int, json.RawMessage, completionUsage, string) {
		b, _ := json.Marshal(struct {
			Error apiError `json:"error"`
		}{e})
		return status, b, u, ""
	}
	switch endpoint {
	case "/v1/chat/completions":
		if err := s.val.validateJSON(schemaChatRequest, body); err != nil {
			s.recordViolation("batch request POST %s: %v", endpoint, err)
			return fail(http.StatusBadRequest, apiError{Message: fmt.Sprintf("Invalid request: %v", err), Type: "invalid_request_error"})
		}
		var req chatRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return fail(http.StatusBadRequest, apiError{Message: fmt.Sprintf("Invalid request body: %v", err), Type: "invalid_request_error"})
		}
		resp := s.completeChat(req, false)
		out := s.marshalValidated(schemaChatResponse, "batch POST /v1/chat/completions", resp)
		s.deliveredChat(req, resp.Usage)
		return http.StatusOK, out, resp.Usage, req.Model
	default: // "/v1/embeddings"
		if err := s.val.validateJSON(schemaEmbedRequest, body); err != nil {
			s.recordViolation("batch request POST %s: %v", endpoint, err)
			return fail(http.StatusBadRequest, apiError{Message: fmt.Sprintf("Invalid request: %v", err), Type: "invalid_request_error"})
		}
		var req embedRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return fail(http.StatusBadRequest, apiError{Message: fmt.Sprintf("Invalid request body: %v", err), Type: "invalid_request_error"})
		}
		inputs, err := parseInputs(req.Input)
		if err != nil {
			return fail(http.StatusBadRequest, apiError{Message: "'$.input' is invalid.", Type: "invalid_request_error"})
		}
		total, rerr := s.checkEmbedRequest(req, inputs)
		if rerr != nil {
			return fail(rerr.status, rerr.err)
		}
		out := s.embed(req, inputs, total)
		s.deliveredEmbeddings(req, inputs, total)
		u.PromptTokens, u.TotalTokens = total, total
		return http.StatusOK, out, u, req.Model
	}
}
