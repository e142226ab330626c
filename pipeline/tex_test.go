package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestReingestOfASnapshotStoredWithTeXAccentsBuysNothing: an arXiv snapshot stored by an
// earlier release kept its TeX accents ("Schr\"odinger"); ingested again now, its papers come
// with their letters as letters, another content hash — and each such paper's TL;DR and vector
// would be bought again, a chat and an embedding for each. The store takes the new form as the
// same text (paper.Abstract.LegacyHash): the titles are stored as letters, no API call is made.
func TestReingestOfASnapshotStoredWithTeXAccentsBuysNothing(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 64})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "test", Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "test", Model: "text-embedding-3-small", Dimensions: 64})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, emb, pipeline.TopologyConfig{})
	const n = 20
	var snapshot strings.Builder
	var before []paper.Abstract // as an earlier release read the snapshot: TeX as it came
	for i := range n {
		title := fmt.Sprintf(`Paper %d on the Schr\"odinger equation of Poincar\'e`, i)
		abstract := fmt.Sprintf(`We solve the nonlinear Schr\"odinger equation number %d on the Poincar\'e disk, after Erd\H{o}s. `+
			`The solution is unique and stable under small perturbations of the initial data.`, i)
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("2401.%05d", i+1), "title": title, "abstract": abstract,
			"authors_parsed": [][]string{{"Author", "A.", ""}}, "update_date": "2024-01-02"})
		snapshot.Write(line)
		snapshot.WriteByte('\n')
		before = append(before, paper.Abstract{ID: fmt.Sprintf("arxiv:2401.%05d", i+1), Title: title, Abstract: abstract,
			Authors: []string{"A. Author"}, URL: fmt.Sprintf("https://arxiv.org/abs/2401.%05d", i+1)})
	}
	publish(t, b.js, before)
	runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4})
	first := api.Stats()

	r, err := ingest.NewReader(strings.NewReader(snapshot.String()), "snapshot.jsonl", ingest.Options{Format: ingest.OAI})
	if err != nil {
		t.Fatal(err)
	}
	var now []paper.Abstract
	for {
		a, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		now = append(now, a)
	}
	publish(t, b.js, now)
	runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4})
	second := api.Stats()
	if second.ChatRequests != first.ChatRequests || second.EmbedRequests != first.EmbedRequests {
		t.Errorf("the snapshot ingested again bought %d chat completions and %d embedding requests for %d papers; want none",
			second.ChatRequests-first.ChatRequests, second.EmbedRequests-first.EmbedRequests, n)
	}
	rec, err := b.store.Paper(context.Background(), "arxiv:2401.00001")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Title != "Paper 0 on the Schrödinger equation of Poincaré" || rec.TLDR == nil || !rec.Embedded {
		t.Errorf("stored %q, TL;DR %+v, embedded %v; want the title in letters with its outputs", rec.Title, rec.TLDR, rec.Embedded)
	}
}
