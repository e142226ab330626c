package summarize

import (
	"context"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
)

func TestOfflineTLDRsOfSampleArchiveAreValidAndDeterministic(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)
	o := NewOffline(30)
	ctx := context.Background()
	for i, p := range papers {
		s, err := o.Summarize(ctx, p)
		if err != nil {
			t.Fatalf("%q: %v", p.Title, err)
		}
		if err := Validate(s.Text, p.Abstract, 30); err != nil {
			t.Errorf("%q: TL;DR %q fails validation: %v", p.Title, s.Text, err)
		}
		if n := len(Words(s.Text)); n > 30 {
			t.Errorf("%q: %d words", p.Title, n)
		}
		again, _ := NewOffline(30).Summarize(ctx, p)
		if again.Text != s.Text {
			t.Errorf("%q: not deterministic: %q vs %q", p.Title, s.Text, again.Text)
		}
		if s.Model != OfflineModel || s.PromptVersion != OfflinePromptVersion || s.ContentHash != p.ContentHash() ||
			s.Validation != paper.ValidOK || s.Usage.Requests != 0 || s.Usage.Kind != paper.KindChat {
			t.Errorf("%q: summary metadata %+v", p.Title, s)
		}
		if i%12 == 0 {
			t.Logf("%s\n    → %s", p.Title, s.Text)
		}
	}
}

func TestOfflineFallsBackToTitle(t *testing.T) {
	t.Parallel()
	got := NewOffline(30).TLDR(paper.Abstract{Title: "A Tiny Model for Big Things", Abstract: "Short."})
	if got != "A Tiny Model for Big Things." {
		t.Fatalf("TLDR = %q", got)
	}
	if _, err := NewOffline(30).Summarize(context.Background(), paper.Abstract{}); err == nil || !strings.Contains(err.Error(), "nothing") {
		t.Fatalf("empty abstract: err = %v", err)
	}
}
