package embed

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	openai "github.com/sashabaranov/go-openai"
)

// errSwitchedToFloat is create's answer when the API answered a base64 request with vectors
// that are not base64: the client now asks for float, and the request is to be sent again.
var errSwitchedToFloat = errors.New("the embeddings API answered a base64 request with float vectors")

// create sends one embeddings request for req's inputs in the client's current encoding
// format. go-openai decodes a base64 answer itself; when the answer's vectors are not base64
// strings (a server that ignores "encoding_format" and answers float arrays), the client
// switches to float for good and create returns errSwitchedToFloat: the caller sends the
// request again, as float, in an attempt of its own (its own Timeout and Limiter wait), which
// is neither a retry nor a failure. That answer was complete, and billed, but go-openai gives
// none of it back: not even its usage.
//
// An API that refuses the "encoding_format" sent (refusesEncoding: LiteLLM's proxy for the
// embedding models of Gemini, Vertex AI or Bedrock, at any value) gets no "encoding_format"
// from then on, and answers float arrays: create returns errEncodingRefused, and the caller
// sends the request again, as after a switch to float. The refusal is not billed.
func (c *Client) create(ctx context.Context, req openai.EmbeddingRequestStrings) (openai.EmbeddingResponse, error) {
	switch {
	case c.noEncoding.Load():
		req.EncodingFormat = "" // left out of the request (omitempty): float arrays
	case c.float.Load():
		req.EncodingFormat = openai.EmbeddingEncodingFormatFloat
	default:
		req.EncodingFormat = openai.EmbeddingEncodingFormatBase64
	}
	resp, err := c.api.CreateEmbeddings(ctx, req)
	if err != nil && req.EncodingFormat != "" && refusesEncoding(err) {
		if c.noEncoding.CompareAndSwap(false, true) {
			c.log.Warn("the embeddings API refuses \"encoding_format\"; sending requests without it from now on "+
				"(float vectors)", "answer", err)
		}
		return openai.EmbeddingResponse{}, errEncodingRefused
	}
	if err == nil || req.EncodingFormat != openai.EmbeddingEncodingFormatBase64 || !notBase64(err) {
		return resp, err
	}
	if c.float.CompareAndSwap(false, true) {
		c.log.Info("the embeddings API does not return base64 embeddings; using float", "err", err)
	}
	return openai.EmbeddingResponse{}, errSwitchedToFloat
}

// errEncodingRefused is create's answer when the API refused the request's "encoding_format":
// the client now leaves it out, and the request is to be sent again.
var errEncodingRefused = errors.New("the embeddings API refuses \"encoding_format\"")

// refusesEncoding reports whether err is an API's refusal of a request for its
// "encoding_format" field: an error status whose message names it, as LiteLLM's proxy answers
// for a provider it does not pass the field to (400 "litellm.UnsupportedParamsError:
// vertex_ai does not support parameters: {'encoding_format': 'base64'}, …"; litellm/utils.py,
// _check_valid_arg; BerriAI/litellm#7358, #14685, #33173). Every request carrying the field
// gets it, whatever its inputs.
func refusesEncoding(err error) bool {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return apiErr.HTTPStatusCode >= 400 && strings.Contains(strings.ToLower(apiErr.Message), "encoding_format")
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) { // a body of another shape than OpenAI's
		return reqErr.HTTPStatusCode >= 400 && strings.Contains(strings.ToLower(string(reqErr.Body)), "encoding_format")
	}
	return false
}

// notBase64 reports whether err is go-openai's failure to read an answer to a base64 request
// whose vectors are not base64: the *json.UnmarshalTypeError of an "embedding" member that is
// not a string (a float array, typically), or the base64.CorruptInputError of a string that
// is not base64. Other errors (HTTP errors, a truncated or malformed body, a type error
// elsewhere in the answer) are not about the encoding.
func notBase64(err error) bool {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return typeErr.Field == "embedding" || strings.HasSuffix(typeErr.Field, ".embedding")
	}
	var corrupt base64.CorruptInputError
	return errors.As(err, &corrupt)
}
