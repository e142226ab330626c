package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

// PAPERPIPE_EMBED_SEND_DIMENSIONS is auto, always or never (unset: auto); anything else is
// refused, naming the variable, exit 2, like any other bad setting.
func TestEmbedSendDimensionsSettingIsAutoAlwaysOrNever(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"sometimes", "yes", "Always"} {
		r := newCLI(t, "PAPERPIPE_EMBED_SEND_DIMENSIONS="+v).run("version")
		if r.code != 2 || !strings.Contains(r.stderr, "paperpipe: PAPERPIPE_EMBED_SEND_DIMENSIONS=") ||
			!strings.Contains(r.stderr, "auto, always or never") {
			t.Errorf("PAPERPIPE_EMBED_SEND_DIMENSIONS=%s: exit %d, stderr %q; want 2 and a message naming the variable", v, r.code, r.stderr)
		}
	}
	for _, v := range []string{"", "auto", "always", "never"} {
		if r := newCLI(t, "PAPERPIPE_EMBED_SEND_DIMENSIONS="+v).run("version"); r.code != 0 {
			t.Errorf("PAPERPIPE_EMBED_SEND_DIMENSIONS=%s: exit %d, stderr %q", v, r.code, r.stderr)
		}
	}
}

// loadConfig reads PAPERPIPE_EMBED_SEND_DIMENSIONS (not parallel: it sets the environment).
func TestEmbedSendDimensionsSettingIsRead(t *testing.T) {
	for v, want := range map[string]embed.SendDimensions{"": embed.SendDimensionsAuto, "always": embed.SendDimensionsAlways, "never": embed.SendDimensionsNever} {
		t.Setenv("PAPERPIPE_EMBED_SEND_DIMENSIONS", v)
		if got := loadConfig().EmbedSendDims; got != want {
			t.Errorf("PAPERPIPE_EMBED_SEND_DIMENSIONS=%q: EmbedSendDims %q, want %q", v, got, want)
		}
	}
}

// The workers' embedder gets the setting: a Matryoshka model on vLLM (which the fake, like
// vLLM, shortens for) configured with PAPERPIPE_EMBED_DIMENSIONS=512 and
// PAPERPIPE_EMBED_SEND_DIMENSIONS=always gets 512-long vectors; by default "dimensions" is not
// sent to it and the native length is the configuration's error, which names the setting.
func TestEmbedSendDimensionsSettingReachesTheEmbedder(t *testing.T) {
	t.Parallel()
	fake := openaitest.Start(t, openaitest.Config{Dimensions: 1024})
	for _, mode := range []embed.SendDimensions{embed.SendDimensionsAlways, embed.SendDimensionsAuto} {
		c := loadConfig()
		c.BaseURL, c.APIKey, c.ChatModel, c.LogLevel = fake.URL(), "sk-test", offline, "error"
		c.EmbedModel, c.EmbedDims, c.EmbedSendDims = "Qwen/Qwen3-Embedding-0.6B", 512, mode
		m, err := buildModels(t.Context(), c, newLogger(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		embs, _, err := m.emb.Embed(t.Context(), []paper.Abstract{{ID: "sd:1", Title: "Matryoshka", Abstract: "Nested vectors."}})
		switch mode {
		case embed.SendDimensionsAlways:
			if err != nil || len(embs[0].Vector) != 512 {
				t.Errorf("always: err %v, want 512-dimensional vectors", err)
			}
		default:
			if !errors.Is(err, llm.ErrAccount) || !strings.Contains(err.Error(), "PAPERPIPE_EMBED_SEND_DIMENSIONS=always") {
				t.Errorf("auto: err %v, want the configuration's error naming PAPERPIPE_EMBED_SEND_DIMENSIONS=always", err)
			}
		}
	}
	// A text-embedding-3 model asked for more than its own length: refused before any request.
	c := loadConfig()
	c.BaseURL, c.APIKey, c.ChatModel, c.LogLevel = fake.URL(), "sk-test", offline, "error"
	c.EmbedModel, c.EmbedDims = "text-embedding-3-small", 3072
	if _, err := buildModels(t.Context(), c, newLogger(c), nil); err == nil || !strings.Contains(err.Error(), "3072") {
		t.Errorf("text-embedding-3-small with PAPERPIPE_EMBED_DIMENSIONS=3072: %v, want refused", err)
	}
}

// The Batch API's embedding requests send "dimensions" as the workers' client does: to
// "openai/text-embedding-3-small" by default, to any model with always (to none with never:
// see TestReprocessBatchAPIRefusesASpaceItsModelWouldNotFill).
func TestReprocessBatchAPISendsDimensionsAsTheSettingSays(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		model        string
		mode         embed.SendDimensions
		wantAccepted bool
	}{
		{"openai/text-embedding-3-small", embed.SendDimensionsAuto, true},
		{"Qwen/Qwen3-Embedding-0.6B", embed.SendDimensionsAlways, true},
	} {
		e := newArchiveEnv(t, openaitest.Config{})
		e.seed(t, 3)
		cfg := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims, c.EmbedSendDims = tc.model, 512, tc.mode })
		res, err := runReprocess(t.Context(), cfg, reprocessOptions{batchAPI: true, embedOnly: true, wait: true, poll: 5 * time.Millisecond}, &bytes.Buffer{}, &bytes.Buffer{})
		if wantErr := !tc.wantAccepted; (err != nil) != wantErr || err != nil && !errors.Is(err, errDeadLettered) {
			t.Errorf("%s, %s: %v; want an incomplete run (exit 1) exactly when answers are rejected", tc.model, tc.mode, err)
		}
		switch {
		case res.Batch == nil:
			t.Errorf("%s, %s: no batch report", tc.model, tc.mode)
		case tc.wantAccepted && (res.Batch.Vectors != 3 || res.Batch.Rejected != 0):
			t.Errorf("%s, %s: batch report %+v, want 3 vectors stored and none rejected", tc.model, tc.mode, res.Batch)
		case !tc.wantAccepted && (res.Batch.Vectors != 0 || res.Batch.Rejected != 3):
			t.Errorf("%s, %s: batch report %+v, want the 3 native-length vectors rejected (no \"dimensions\" sent)", tc.model, tc.mode, res.Batch)
		}
	}
}

// A --batch-api run into a space of another length than its model answers when no
// "dimensions" is sent to it (text-embedding-3-small with PAPERPIPE_EMBED_SEND_DIMENSIONS=never,
// text-embedding-ada-002, which never takes it) sent every paper, and rejected every answer
// (1536-long for the space's 512) once the batches were done and paid for. It is refused
// before the space is made or anything sent, a dry run too, naming what to set; the models'
// own length is accepted.
func TestReprocessBatchAPIRefusesASpaceItsModelWouldNotFill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		model string
		mode  embed.SendDimensions
		want  string
	}{
		{"text-embedding-3-small", embed.SendDimensionsNever, "PAPERPIPE_EMBED_SEND_DIMENSIONS=never does not send it"},
		{"text-embedding-ada-002", embed.SendDimensionsAuto, "sent by default to OpenAI's text-embedding-3 models only"},
	} {
		e := newArchiveEnv(t, openaitest.Config{})
		e.seed(t, 3)
		cfg := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims, c.EmbedSendDims = tc.model, 512, tc.mode })
		for _, dry := range []bool{true, false} {
			_, err := runReprocess(t.Context(), cfg, reprocessOptions{batchAPI: true, embedOnly: true, dryRun: dry, wait: true, poll: 5 * time.Millisecond},
				&bytes.Buffer{}, &bytes.Buffer{})
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "PAPERPIPE_EMBED_DIMENSIONS=1536") || !strings.Contains(err.Error(), "holds 512") {
				t.Errorf("%s, %s, dry run %v: %v; want it refused, saying why and PAPERPIPE_EMBED_DIMENSIONS=1536", tc.model, tc.mode, dry, err)
			}
		}
		if s := e.fake.Stats(); s.EmbedInputsDelivered != 0 {
			t.Errorf("%s, %s: %d vectors delivered (and paid for), want none", tc.model, tc.mode, s.EmbedInputsDelivered)
		}
		if n := e.count(t, "SELECT count(*) FROM embedding_spaces") + e.count(t, "SELECT count(*) FROM batch_jobs"); n != 0 {
			t.Errorf("%s, %s: %d spaces and batch jobs recorded, want none", tc.model, tc.mode, n)
		}
		// Its own length is the model's answer: accepted.
		own := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims, c.EmbedSendDims = tc.model, 1536, tc.mode })
		res, err := runReprocess(t.Context(), own, reprocessOptions{batchAPI: true, embedOnly: true, wait: true, poll: 5 * time.Millisecond},
			&bytes.Buffer{}, &bytes.Buffer{})
		if err != nil || res.Batch == nil || res.Batch.Vectors != 3 {
			t.Errorf("%s, %s with 1536 dimensions: %v, report %+v; want its 3 vectors stored", tc.model, tc.mode, err, res.Batch)
		}
	}
}

// The offline models make vectors of their own length (768 for the hashed model; a fitted
// model's, `fit --dimensions`): --embed-dimensions of another length with one of them was
// ignored without a word — `embed --embed-dimensions 256` printed 768-long vectors, `search`
// and `worker` went on in the 768 space. Given as a flag, it is a usage error naming the
// model's length; PAPERPIPE_EMBED_DIMENSIONS, which an environment shared with the API's
// models may hold, is not.
func TestEmbedDimensionsFlagWithAnOfflineModelIsAUsageError(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	src := writeFile(t, t.TempDir(), "one.jsonl", []byte(`{"id":"2405.00001","title":"Good","abstract":"We study careful input handling in data pipelines. It works."}`+"\n"))
	for _, args := range [][]string{
		{"embed", "--embed-dimensions", "256", src},
		{"search", "input handling", "--embed-dimensions", "256"},
		{"worker", "--exit-when-idle", "--embed-dimensions", "256"},
		{"reprocess", "--embed-only", "--dry-run", "--embed-dimensions", "256"},
	} {
		r := c.run(args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "--embed-dimensions 256: the offline model paperpipe-offline-hash-v2 makes vectors of 768 dimensions") {
			t.Errorf("%s: exit %d\nstdout: %.300s\nstderr: %s\nwant 2 (usage) naming the model's length", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	// Its own length, or the variable: as without it.
	c.ok("embed", "--embed-dimensions", "768", src)
	env := &cli{t: t, env: append(append([]string(nil), c.env...), "PAPERPIPE_EMBED_DIMENSIONS=256")}
	env.ok("embed", src)
}
