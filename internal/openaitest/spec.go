package openaitest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// specYAML is OpenAI's OpenAPI description trimmed to the endpoints this
// server implements (see internal/trimspec and LICENSE-openai).
//
//go:embed openapi.yaml
var specYAML []byte

// Names of the component schemas the server validates against.
const (
	schemaChatRequest   = "CreateChatCompletionRequest"
	schemaChatResponse  = "CreateChatCompletionResponse"
	schemaEmbedRequest  = "CreateEmbeddingRequest"
	schemaEmbedResponse = "CreateEmbeddingResponse"
	schemaFileRequest   = "CreateFileRequest"
	schemaFile          = "OpenAIFile"
	schemaFileDeleted   = "DeleteFileResponse"
	schemaBatchRequest  = "CreateBatchRequest"
	schemaBatch         = "Batch"
	schemaBatchList     = "ListBatchesResponse"
	schemaError         = "ErrorResponse"
)

var validatedSchemas = []string{
	schemaChatRequest, schemaChatResponse, schemaEmbedRequest, schemaEmbedResponse,
	schemaFileRequest, schemaFile, schemaFileDeleted, schemaBatchRequest, schemaBatch, schemaBatchList, schemaError,
}

// specDocURL is the base URL the document is registered under in the
// JSON Schema compiler; "$ref"s inside it resolve against it.
const specDocURL = "mem://openai/openapi.json"

// validator validates JSON values against component schemas of the
// embedded description. It is immutable once built and safe for concurrent
// use.
type validator struct {
	doc     *openapi3.T
	schemas map[string]*jsonschema.Schema
}

// loadValidator parses the embedded description once per process: the
// result is immutable, so sharing it between servers is safe.
var loadValidator = sync.OnceValues(func() (*validator, error) {
	return newValidator(specYAML)
})

// newValidator parses an OpenAPI 3.1 document with kin-openapi and compiles
// the schemas the server needs with the JSON Schema 2020-12 validator that
// kin-openapi itself uses for 3.1 documents. kin-openapi's
// Schema.VisitJSON(v, openapi3.EnableJSONSchema2020()) gives the same
// verdicts (a test checks that) but recompiles the schema on every call,
// tens of milliseconds for CreateChatCompletionRequest, too slow for a
// server in benchmarks; compiling each schema once keeps validation in
// the microseconds.
func newValidator(yamlDoc []byte) (*validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(yamlDoc)
	if err != nil {
		return nil, fmt.Errorf("loading OpenAPI description: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validating OpenAPI description: %w", err)
	}
	// kin-openapi marshals the document back to JSON with its $refs intact;
	// the compiler resolves them against the document root.
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding OpenAPI description as JSON: %w", err)
	}
	root, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decoding OpenAPI description JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(specDocURL, root); err != nil {
		return nil, fmt.Errorf("adding OpenAPI description to the schema compiler: %w", err)
	}
	v := &validator{doc: doc, schemas: map[string]*jsonschema.Schema{}}
	for _, name := range validatedSchemas {
		if doc.Components.Schemas[name] == nil {
			return nil, fmt.Errorf("OpenAPI description has no schema %s", name)
		}
		s, err := c.Compile(specDocURL + "#/components/schemas/" + name)
		if err != nil {
			return nil, fmt.Errorf("compiling schema %s: %w", name, err)
		}
		v.schemas[name] = s
	}
	return v, nil
}

// validateJSON decodes body and validates it against the named schema.
func (v *validator) validateJSON(schema string, body []byte) error {
	val, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("body is not valid JSON: %w", err)
	}
	return v.validateValue(schema, val)
}

// validateValue validates a decoded JSON value (as produced by
// encoding/json or jsonschema.UnmarshalJSON) against the named schema. The
// error, if any, is one line naming each failing location.
func (v *validator) validateValue(schema string, val any) error {
	s, ok := v.schemas[schema]
	if !ok {
		return fmt.Errorf("no compiled schema %s", schema)
	}
	err := s.Validate(val)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return fmt.Errorf("does not match %s: %s", schema, summarize(ve))
	}
	return fmt.Errorf("does not match %s: %w", schema, err)
}

var printer = message.NewPrinter(language.English)

// summarize flattens a validation error tree into one line listing its
// leaves (the most specific failures), at most a handful of them.
func summarize(ve *jsonschema.ValidationError) string {
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			leaves = append(leaves, fmt.Sprintf("at '%s': %s", loc, e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.Sort(leaves)
	leaves = slices.Compact(leaves)
	const maxLeaves = 6
	if len(leaves) > maxLeaves {
		leaves = append(leaves[:maxLeaves], fmt.Sprintf("and %d more", len(leaves)-maxLeaves))
	}
	return strings.Join(leaves, "; ")
}
