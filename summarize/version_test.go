package summarize

import (
	"context"
	"testing"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// The word limit is part of the prompt and of the validation, so it is part of the prompt
// version stored with each TL;DR: after PAPERPIPE_TLDR_MAX_WORDS is lowered, the TL;DRs written
// under the old limit are stale and `reprocess` rewrites them. At the default the version is
// the plain one, so TL;DRs stored before the limit was part of it stay current.
func TestPromptVersionNamesAWordLimitOtherThanTheDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := openaitest.Start(t, openaitest.Config{})
	for _, tc := range []struct {
		maxWords        int
		client, offline string
	}{
		{0, "tldr-v1", "extractive-v2"},
		{DefaultMaxWords, "tldr-v1", "extractive-v2"},
		{15, "tldr-v1-w15", "extractive-v2-w15"},
		{60, "tldr-v1-w60", "extractive-v2-w60"},
	} {
		c := newClient(t, srv, nil, func(c *Config) { c.MaxWords = tc.maxWords })
		s, err := c.Summarize(ctx, testPaper)
		if err != nil {
			t.Fatal(err)
		}
		if c.PromptVersion() != tc.client || s.PromptVersion != tc.client {
			t.Errorf("Client at MaxWords %d: PromptVersion %q, stored %q; want %q", tc.maxWords, c.PromptVersion(), s.PromptVersion, tc.client)
		}
		o := NewOffline(tc.maxWords)
		s, err = o.Summarize(ctx, testPaper)
		if err != nil {
			t.Fatal(err)
		}
		if o.PromptVersion() != tc.offline || s.PromptVersion != tc.offline {
			t.Errorf("Offline at maxWords %d: PromptVersion %q, stored %q; want %q", tc.maxWords, o.PromptVersion(), s.PromptVersion, tc.offline)
		}
	}
}
