// Package sampledata gives tests the sample archive shipped in testdata/sample-papers.txt: 108
// papers from a daily-papers page, read the way `paperpipe ingest` reads them.
package sampledata

import (
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/paper"
)

// Path returns the absolute path of testdata/sample-papers.txt.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "sample-papers.txt")
}

// Papers reads the sample archive; any error, a bad record included, fails tb.
func Papers(tb testing.TB) []paper.Abstract {
	tb.Helper()
	r, closer, err := ingest.Open(Path(), ingest.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer closer.Close()
	var out []paper.Abstract
	for {
		a, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("sample archive: %v", err)
		}
		out = append(out, a)
	}
}
