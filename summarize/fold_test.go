package summarize_test

import (
	"context"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestOfflineTLDRUnchangedByTheASCIIFold: the offline summarizer matches its cues against an
// ASCII-folded sentence rather than case-insensitively (faster), which must not change a TL;DR.
// Case-insensitive matching also folds the long s (U+017F) to s and the Kelvin sign (U+212A)
// to k; the TL;DR below is the one the summarizer wrote with (?i) cues.
func TestOfflineTLDRUnchangedByTheASCIIFold(t *testing.T) {
	a := paper.Abstract{ID: "x", Title: "A title here for it",
		Abstract: "We show that crystals differ from molecules in many ways that matter. " +
			"This paper pre\u017fents a graph network for crystals that runs fast."}
	s, err := summarize.NewOffline(30).Summarize(context.Background(), a)
	if want := "Pre\u017fents a graph network for crystals that runs fast."; err != nil || s.Text != want {
		t.Errorf("TL;DR %q, %v; want %q (before 9a1bae4)", s.Text, err, want)
	}
}
