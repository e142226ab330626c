package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A process's time zone (TZ) changes no date paperpipe shows: a paper's published date and the
// times of --json are those the web shows, in UTC, whether the command runs in UTC, west of it
// (the day before at midnight UTC) or east of it.
func TestShowDatesDoNotDependOnTheTimeZone(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "TZ=UTC")
	file := filepath.Join(t.TempDir(), "papers.jsonl")
	rec := `{"id":"arxiv:2403.00001","title":"Dates across time zones","abstract":"A paper published at midnight UTC, read in other time zones.","published":"2024-03-01"}` + "\n"
	if err := os.WriteFile(file, []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("ingest", file)
	c.workUntilIdle()
	for _, tz := range []string{"UTC", "America/Los_Angeles", "Asia/Kolkata"} {
		c.env = append(c.env, "TZ="+tz) // the last one counts
		out := c.ok("show", "arxiv:2403.00001").stdout
		if !strings.Contains(out, "published: 2024-03-01\n") {
			t.Errorf("TZ=%s: show says:\n%s\nwant published: 2024-03-01", tz, out)
		}
		var p struct {
			Published string `json:"published"`
			CreatedAt string `json:"created_at"`
		}
		c.json(&p, "show", "arxiv:2403.00001")
		if p.Published != "2024-03-01T00:00:00Z" || !strings.HasSuffix(p.CreatedAt, "Z") {
			t.Errorf("TZ=%s: show --json says published %q, created_at %q; want 2024-03-01T00:00:00Z and a UTC time, as the web API gives", tz, p.Published, p.CreatedAt)
		}
	}
}
