package ingest

import (
	"reflect"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// The fixtures arxiv-announce.atom.xml and arxiv-announce.rss.xml are arXiv's daily
// announcement feeds (https://rss.arxiv.org/atom/cs.LG, https://rss.arxiv.org/rss/cs.LG) as
// arXiv's feed service writes them (github.com/arXiv/arxiv-feed, feed/serializers: feedgen with
// its arxiv and dc extensions): the OAI identifier as <id> or <guid>, the abstract after
// "arXiv:ID Announce Type: TYPE \nAbstract: ", the authors in one <dc:creator>, affiliations
// in parentheses.

// announced is the first paper of both fixtures, as read.
func announced(source string) paper.Abstract {
	return paper.Abstract{
		ID: "arxiv:2401.17263", Title: "Sparse Routing for Experts",
		Abstract:   "We study routing in mixtures of experts. It works & scales.",
		Authors:    []string{"Ada Lovelace", "Alan Turing", "Grace Hopper"},
		Categories: []string{"cs.LG", "cs.CL"},
		Published:  time.Date(2024, 2, 1, 5, 0, 0, 0, time.UTC), URL: "https://arxiv.org/abs/2401.17263",
		Source: source,
	}
}

func TestArxivAnnouncementAtomFeed(t *testing.T) {
	t.Parallel()
	papers, _, events := readFixture(t, "arxiv-announce.atom.xml", Atom)
	equalEvents(t, events, []string{
		"paper arxiv-announce.atom.xml:8 Sparse Routing for Experts",
		"paper arxiv-announce.atom.xml:22 An Older Paper, Revised",
	})
	if len(papers) != 2 {
		t.Fatalf("%d papers, want 2", len(papers))
	}
	if want := announced("arxiv-announce.atom.xml:8"); !reflect.DeepEqual(papers[0], want) {
		t.Errorf("paper:\n got %+v\nwant %+v", papers[0], want)
	}
	// A replacement (v3) is the paper's id, not a paper of its own, and its text is the
	// abstract alone: the same text from the arXiv API or the OAI snapshot is the same
	// content hash, not a new TL;DR bought for the announcement's words.
	if got := papers[1]; got.ID != "arxiv:2312.04567" || got.Abstract != "Revised results on the old problem." {
		t.Errorf("replacement: id %q, abstract %q", got.ID, got.Abstract)
	}
}

func TestAnnouncementPrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"arXiv:2401.17263v1 Announce Type: new \nAbstract: We study.":          "We study.",
		"arXiv:2411.00300v2 Announce Type: replace Abstract: We study.":        "We study.",
		"arXiv:hep-th/9901001v2 Announce Type: replace-cross  Abstract: Text.": "Text.",
		"  arXiv:2401.17263v1 Announce Type: cross\r\nAbstract:\tText.":        "Text.",
		// Only the announcement's own line: an abstract that mentions one is kept.
		"We cite arXiv:2401.17263v1 Announce Type: new Abstract: here.": "We cite arXiv:2401.17263v1 Announce Type: new Abstract: here.",
		"Plain abstract.": "Plain abstract.",
	} {
		if got := stripAnnouncement(in); got != want {
			t.Errorf("stripAnnouncement(%q) = %q, want %q", in, got, want)
		}
	}
}
