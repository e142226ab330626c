package openaitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sashabaranov/go-openai"
)

// waitBatch polls a batch until it reaches a final status.
func waitBatch(t *testing.T, c *openai.Client, id string) openai.BatchResponse {
	t.Helper()
	seen := map[string]bool{}
	for range 500 {
		b, err := c.RetrieveBatch(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		seen[b.Status] = true
		if b.Status == "completed" || b.Status == "failed" {
			return b
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("batch %s did not finish; statuses seen %v", id, seen)
	return openai.BatchResponse{}
}

func uploadBatch(t *testing.T, c *openai.Client, lines ...any) openai.File {
	t.Helper()
	var buf bytes.Buffer
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	f, err := c.CreateFileBytes(context.Background(), openai.FileBytesRequest{
		Name: "batch.jsonl", Bytes: buf.Bytes(), Purpose: openai.PurposeBatch,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readResults(t *testing.T, c *openai.Client, fileID string) map[string]batchResult {
	t.Helper()
	raw, err := c.GetFileContent(context.Background(), fileID)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	out := map[string]batchResult{}
	sc := bufio.NewScanner(raw)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r batchResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		out[r.CustomID] = r
	}
	return out
}

func TestBatchChatCompletions(t *testing.T) {
	s := Start(t, Config{})
	c := client(s, "k")
	in := uploadBatch(t, c,
		openai.BatchChatCompletionRequest{CustomID: "p1", Method: http.MethodPost, URL: openai.BatchEndpointChatCompletions, Body: newChatRequest(prompt(abstract))},
		openai.BatchChatCompletionRequest{CustomID: "p2", Method: http.MethodPost, URL: openai.BatchEndpointChatCompletions, Body: newChatRequest("Second paper. It is short.")},
		// A line that breaks the spec: no model.
		map[string]any{"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
			"body": map[string]any{"messages": []any{map[string]any{"role": "user", "content": "x"}}}},
	)
	if in.Purpose != string(openai.PurposeBatch) || in.Bytes == 0 || in.Status != "processed" {
		t.Errorf("uploaded file = %+v", in)
	}
	got, err := c.GetFile(context.Background(), in.ID)
	if err != nil || got.ID != in.ID || got.Bytes != in.Bytes {
		t.Errorf("GetFile = %+v, %v", got, err)
	}
	b, err := c.CreateBatch(context.Background(), openai.CreateBatchRequest{
		InputFileID: in.ID, Endpoint: openai.BatchEndpointChatCompletions,
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != "validating" || b.InputFileID != in.ID || b.CompletionWindow != "24h" {
		t.Errorf("created batch = %+v", b.Batch)
	}
	done := waitBatch(t, c, b.ID)
	if done.Status != "completed" || done.OutputFileID == nil || done.ErrorFileID == nil || done.CompletedAt == nil {
		t.Fatalf("batch = %+v, want completed with output and error files", done.Batch)
	}
	if done.RequestCounts.Total != 3 || done.RequestCounts.Completed != 2 || done.RequestCounts.Failed != 1 {
		t.Errorf("request counts = %+v, want 3 total, 2 completed, 1 failed", done.RequestCounts)
	}
	out := readResults(t, c, *done.OutputFileID)
	if len(out) != 2 {
		t.Fatalf("%d output lines, want 2", len(out))
	}
	r := out["p1"]
	if r.Response == nil || r.Response.StatusCode != 200 || r.Error != nil || r.ID == "" || r.Response.RequestID == "" {
		t.Fatalf("p1 result = %+v", r)
	}
	var resp openai.ChatCompletionResponse
	if err := json.Unmarshal(r.Response.Body, &resp); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Choices[0].Message.Content, "We propose a load-balancing loss") {
		t.Errorf("p1 content = %q", resp.Choices[0].Message.Content)
	}
	errs := readResults(t, c, *done.ErrorFileID)
	if e := errs["bad"]; e.Response == nil || e.Response.StatusCode != http.StatusBadRequest {
		t.Errorf("bad line result = %+v, want a 400", e)
	}
	if st := s.Stats(); st.ChatDelivered != 2 || st.ChatRequests != 0 {
		t.Errorf("stats = %+v, want 2 delivered by the batch and no HTTP chat requests", st)
	}
	// The bad line was a client-side spec violation; this test provoked it.
	if v := s.TakeValidationErrors(); len(v) != 1 || !strings.Contains(v[0], "'model'") {
		t.Errorf("validation errors = %q, want the bad line's", v)
	}
}

func TestBatchEmbeddings(t *testing.T) {
	s := Start(t, Config{})
	c := client(s, "k")
	in := uploadBatch(t, c,
		openai.BatchEmbeddingRequest{CustomID: "e1", Method: http.MethodPost, URL: openai.BatchEndpointEmbeddings,
			Body: openai.EmbeddingRequest{Input: []string{"alpha", "beta"}, Model: openai.SmallEmbedding3, Dimensions: 16}},
	)
	b, err := c.CreateBatch(context.Background(), openai.CreateBatchRequest{InputFileID: in.ID, Endpoint: openai.BatchEndpointEmbeddings})
	if err != nil {
		t.Fatal(err)
	}
	done := waitBatch(t, c, b.ID)
	if done.Status != "completed" || done.ErrorFileID != nil || done.RequestCounts.Completed != 1 {
		t.Fatalf("batch = %+v", done.Batch)
	}
	r := readResults(t, c, *done.OutputFileID)["e1"]
	var resp openai.EmbeddingResponse
	if err := json.Unmarshal(r.Response.Body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || !equal(resp.Data[1].Embedding, Vector("beta", 16)) {
		t.Errorf("embeddings = %+v, want Vector(alpha), Vector(beta) of 16 dims", resp.Data)
	}
	if st := s.Stats(); st.EmbedInputsDelivered != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestBatchOfAnUnparseableFileFails(t *testing.T) {
	s := Start(t, Config{})
	c := client(s, "k")
	f, err := c.CreateFileBytes(context.Background(), openai.FileBytesRequest{Name: "x.jsonl", Bytes: []byte("not json\n"), Purpose: openai.PurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateBatch(context.Background(), openai.CreateBatchRequest{InputFileID: f.ID, Endpoint: openai.BatchEndpointEmbeddings})
	if err != nil {
		t.Fatal(err)
	}
	done := waitBatch(t, c, b.ID)
	if done.Status != "failed" || done.Errors == nil || len(done.Errors.Data) != 1 || *done.Errors.Data[0].Line != 1 {
		t.Errorf("batch = %+v, want failed with an error on line 1", done.Batch)
	}
}

func TestBatchRejectsUnknownFilesAndEndpoints(t *testing.T) {
	s := Start(t, Config{})
	c := client(s, "k")
	_, err := c.CreateBatch(context.Background(), openai.CreateBatchRequest{InputFileID: "file-nope", Endpoint: openai.BatchEndpointEmbeddings})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusNotFound {
		t.Errorf("unknown file: err = %v, want a 404", err)
	}
	f := uploadBatch(t, c, map[string]any{"custom_id": "x"})
	_, err = c.CreateBatch(context.Background(), openai.CreateBatchRequest{InputFileID: f.ID, Endpoint: openai.BatchEndpointCompletions})
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest {
		t.Errorf("unsupported endpoint: err = %v, want a 400", err)
	}
}

// GET /v1/batches lists the batches newest first, limit at a time, paging with after while
// has_more (what a client resuming a job relies on to find a batch whose create answer it lost).
func TestListBatchesPagesNewestFirst(t *testing.T) {
	s := Start(t, Config{})
	c := client(s, "k")
	f := uploadBatch(t, c, map[string]any{"custom_id": "x"})
	var ids []string
	for range 3 {
		b, err := c.CreateBatch(context.Background(), openai.CreateBatchRequest{
			InputFileID: f.ID, Endpoint: openai.BatchEndpointEmbeddings, CompletionWindow: "24h",
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]string{b.ID}, ids...)
	}
	limit := 2
	page, err := c.ListBatch(context.Background(), nil, &limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0].ID != ids[0] || page.Data[1].ID != ids[1] || !page.HasMore || page.LastID != ids[1] {
		t.Fatalf("first page %+v, want %v then more", page, ids[:2])
	}
	page, err = c.ListBatch(context.Background(), &page.LastID, &limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != ids[2] || page.HasMore {
		t.Fatalf("second page %+v, want %v and no more", page, ids[2:])
	}
	if v := s.TakeValidationErrors(); len(v) > 0 {
		t.Errorf("spec violations: %v", v)
	}
}
