package main

import (
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     progress
		final bool
		want  []string
		not   []string
	}{
		{"file with size on a terminal", progress{name: "f", unit: "records", tty: true, bytes: true, n: 500, pos: 25e6, total: 100e6},
			false, []string{"[######..................]", " 25%", "500 records, 25.0/100.0 MB", "records/s", "ETA "}, nil},
		{"stdin: size unknown", progress{name: "stdin", unit: "records", bytes: true, n: 7, pos: 1e6},
			false, []string{"stdin: 7 records, 1.0 MB"}, []string{"ETA", "%", "["}},
		{"count, plain lines", progress{name: "reprocess", unit: "papers", n: 30, pos: 30, total: 120},
			false, []string{" 25%", "30/120 papers", "ETA "}, []string{"["}},
		{"final line", progress{name: "reprocess", unit: "papers", n: 120, pos: 120, total: 120},
			true, []string{"100%", "120/120 papers"}, []string{"ETA"}},
	} {
		tc.p.start = time.Now().Add(-10 * time.Second)
		got := tc.p.line(tc.final)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.name, got, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(got, w) {
				t.Errorf("%s: %q contains %q", tc.name, got, w)
			}
		}
	}
}
