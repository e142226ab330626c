package main

import (
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

const source = `
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /embeddings:
    post:
      operationId: createEmbedding
      x-oaiMeta: {examples: long}
      requestBody:
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Req"}
    get:
      responses:
        "200": {$ref: "#/components/responses/Unused"}
  /chat/completions: {post: {operationId: c}}
  /files: {post: {operationId: f}}
  /files/{file_id}: {get: {operationId: g}, delete: {operationId: d}}
  /files/{file_id}/content: {get: {operationId: h}}
  /batches: {post: {operationId: b}, get: {operationId: l}}
  /batches/{batch_id}: {get: {operationId: i}}
components:
  responses:
    Unused: {description: never kept}
  schemas:
    Req:
      type: object
      example: {a: 1}
      properties:
        description: {type: string, description: a property named description}
        max: {type: integer, nullable: true}
        mode: {type: string, enum: [a, b], nullable: true}
        stop: {$ref: "#/components/schemas/Stop"}
    Stop:
      description: kept
      nullable: true
      oneOf: [{type: string}, {type: array}]
    Unreferenced: {type: string}
`

func TestTrim(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(source), &doc); err != nil {
		t.Fatal(err)
	}
	out, err := trim(doc.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"Req:", "Stop:",
		"description: {type: string",   // the property named description survives
		`type: [integer, "null"]`,      // nullable rewritten into a type array
		"enum: [a, b, null]",           // and null added to an enum
		"anyOf:",                       // nullable without a type wrapped in anyOf
		"description: kept",            // descriptions kept
		"operationId: createEmbedding", // the kept operation
	} {
		if !strings.Contains(got, want) {
			t.Errorf("trimmed document lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"Unreferenced", "Unused", "x-oaiMeta", "example", "nullable", "responses"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("trimmed document keeps %q:\n%s", unwanted, got)
		}
	}
}
