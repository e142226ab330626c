package openaitest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// specCases are JSON values with the verdict OpenAI's description gives them.
var specCases = []struct {
	name   string
	schema string
	body   string
	valid  bool
	want   string // substring of the error when invalid
}{
	{"chat request minimal", schemaChatRequest,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, true, ""},
	{"chat request with nulls the API accepts", schemaChatRequest,
		`{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_tokens":null,"stop":null,"temperature":0.2,"n":null}`, true, ""},
	{"chat request with content parts", schemaChatRequest,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`, true, ""},
	{"chat request without model", schemaChatRequest,
		`{"messages":[{"role":"user","content":"hi"}]}`, false, "model"},
	{"chat request with a string max_tokens", schemaChatRequest,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}`, false, "/max_tokens"},
	{"chat request with an unknown role", schemaChatRequest,
		`{"model":"m","messages":[{"role":"robot","content":"hi"}]}`, false, "/messages/0"},
	{"chat request with temperature out of range", schemaChatRequest,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":3}`, false, "/temperature"},
	{"chat response complete", schemaChatResponse,
		`{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, true, ""},
	{"chat response without logprobs", schemaChatResponse,
		`{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`, false, "logprobs"},
	{"chat response with a wrong object", schemaChatResponse,
		`{"id":"c1","object":"chat","created":1,"model":"m","choices":[]}`, false, "/object"},
	{"chat response with usage missing total", schemaChatResponse,
		`{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, false, "total_tokens"},
	{"embedding request string", schemaEmbedRequest, `{"model":"e","input":"hello"}`, true, ""},
	{"embedding request strings", schemaEmbedRequest, `{"model":"e","input":["a","b"],"encoding_format":"base64","dimensions":8}`, true, ""},
	{"embedding request tokens", schemaEmbedRequest, `{"model":"e","input":[1,2,3]}`, true, ""},
	{"embedding request token arrays", schemaEmbedRequest, `{"model":"e","input":[[1,2],[3]]}`, true, ""},
	{"embedding request without input", schemaEmbedRequest, `{"model":"e"}`, false, "input"},
	{"embedding request with an unknown field", schemaEmbedRequest, `{"model":"e","input":"x","colour":"red"}`, false, "colour"},
	{"embedding request with an empty array", schemaEmbedRequest, `{"model":"e","input":[]}`, false, "/input"},
	{"embedding request with zero dimensions", schemaEmbedRequest, `{"model":"e","input":"x","dimensions":0}`, false, "/dimensions"},
	{"embedding request with an unknown encoding", schemaEmbedRequest, `{"model":"e","input":"x","encoding_format":"hex"}`, false, "/encoding_format"},
	{"embedding response", schemaEmbedResponse,
		`{"object":"list","model":"m","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":1,"total_tokens":1}}`, true, ""},
	{"embedding response without usage", schemaEmbedResponse,
		`{"object":"list","model":"m","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}]}`, false, "usage"},
	{"embedding response with a string vector", schemaEmbedResponse,
		`{"object":"list","model":"m","data":[{"object":"embedding","index":0,"embedding":"AAAA"}],"usage":{"prompt_tokens":1,"total_tokens":1}}`, false, "/data/0/embedding"},
	{"error response", schemaError, `{"error":{"message":"m","type":"invalid_request_error","param":null,"code":null}}`, true, ""},
	{"error response without code", schemaError, `{"error":{"message":"m","type":"t","param":null}}`, false, "code"},
	{"batch request", schemaBatchRequest, `{"input_file_id":"file-1","endpoint":"/v1/embeddings","completion_window":"24h"}`, true, ""},
	{"batch request with a bad window", schemaBatchRequest, `{"input_file_id":"file-1","endpoint":"/v1/embeddings","completion_window":"1h"}`, false, "/completion_window"},
	{"batch", schemaBatch, `{"id":"b","object":"batch","endpoint":"/v1/embeddings","input_file_id":"f","completion_window":"24h","status":"in_progress","created_at":1,"request_counts":{"total":1,"completed":0,"failed":0}}`, true, ""},
	{"batch with an unknown status", schemaBatch, `{"id":"b","object":"batch","endpoint":"/v1/embeddings","input_file_id":"f","completion_window":"24h","status":"running","created_at":1}`, false, "/status"},
	{"batch without input file", schemaBatch, `{"id":"b","object":"batch","endpoint":"/v1/embeddings","completion_window":"24h","status":"completed","created_at":1}`, false, "input_file_id"},
	{"file", schemaFile, `{"id":"f","object":"file","bytes":3,"created_at":1,"filename":"a.jsonl","purpose":"batch","status":"processed"}`, true, ""},
	{"file with an unknown purpose", schemaFile, `{"id":"f","object":"file","bytes":3,"created_at":1,"filename":"a.jsonl","purpose":"fun","status":"processed"}`, false, "/purpose"},
	{"file upload form", schemaFileRequest, `{"file":"{}","purpose":"batch"}`, true, ""},
	{"file upload form without purpose", schemaFileRequest, `{"file":"{}"}`, false, "purpose"},
}

func TestValidatorVerdicts(t *testing.T) {
	v, err := loadValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range specCases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.validateJSON(tc.schema, []byte(tc.body))
			if tc.valid {
				if err != nil {
					t.Fatalf("valid value rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("invalid value accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestValidatorAgreesWithKinOpenAPI checks that the compiled validators give
// the verdicts of kin-openapi's own (slow) 3.1 validation path.
func TestValidatorAgreesWithKinOpenAPI(t *testing.T) {
	v, err := loadValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range specCases {
		var val any
		if err := json.Unmarshal([]byte(tc.body), &val); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		kinErr := v.doc.Components.Schemas[tc.schema].Value.VisitJSON(val, openapi3.EnableJSONSchema2020())
		if (kinErr == nil) != tc.valid {
			t.Errorf("%s: kin-openapi verdict %v, want valid=%v", tc.name, kinErr, tc.valid)
		}
	}
}
