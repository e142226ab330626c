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
func (c *Client) create(ctx context.Context, req openai.EmbeddingRequestStrings) (openai.EmbeddingResponse, error) {
	req.EncodingFormat = openai.EmbeddingEncodingFormatBase64
	if c.float.Load() {
		req.EncodingFormat = openai.EmbeddingEncodingFormatFloat
	}
	resp, err := c.api.CreateEmbeddings(ctx, req)
	if err == nil || req.EncodingFormat != openai.EmbeddingEncodingFormatBase64 || !notBase64(err) {
		return resp, err
	}
	if c.float.CompareAndSwap(false, true) {
		c.log.Info("the embeddings API does not return base64 embeddings; using float", "err", err)
	}
	return openai.EmbeddingResponse{}, errSwitchedToFloat
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
