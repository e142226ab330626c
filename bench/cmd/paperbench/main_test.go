package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/pgtest"
)

// The command line is written to bench/results, which is committed: a -db URL's password
// must not be in it, in either flag form.
func TestCommandLineOfTheResultsHidesTheDatabasePassword(t *testing.T) {
	for _, args := range [][]string{
		{"-set", "quick", "-db", "postgres://bench:s3cret@db.example/postgres", "-out", "r"},
		{"-set", "quick", "-db=postgres://bench:s3cret@db.example/postgres"},
		{"--db", "postgres://bench:s3cret@db.example/postgres?sslmode=require"},
	} {
		got := strings.Join(redactDB(args), " ")
		if strings.Contains(got, "s3cret") || !strings.Contains(got, "db.example") {
			t.Errorf("redactDB(%q) = %q: the password is shown, or the host is not", args, got)
		}
		if strings.Contains(strings.Join(args, " "), "xxxxx") {
			t.Errorf("redactDB changed its argument %q", args)
		}
	}
}

// A case name or scenario that the set does not have (a typo in `make bench BENCHFLAGS=...`) is
// refused before anything runs: it used to be skipped without a word, and a run of nothing but
// unknown names was written as a complete run, over the set's summary, with every goal "not
// measured".
func TestUnknownCasesAndScenariosAreRefusedBeforeAnythingRuns(t *testing.T) {
	db := os.Getenv("PAPERPIPE_TEST_DATABASE_URL")
	if db == "" {
		db = "postgres://nobody@127.0.0.1:1/none?connect_timeout=1" // nothing listens: the run must not get there
	}
	for _, tc := range []struct {
		name    string
		args    []string
		unknown string // what the error must name
	}{
		{"misspelt case", []string{"-only", "pipeline", "-cases", "C265"}, "C265"},
		{"a known case among misspelt ones", []string{"-cases", "C64,C265"}, "C265"},
		{"a case of a scenario not run", []string{"-only", "knn", "-cases", "C64"}, "C64"},
		{"misspelt scenario", []string{"-only", "pipline"}, "pipline"},
		{"no scenario", []string{"-only", ","}, "no such scenario"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"-set", "quick", "-db", db, "-dbname", "benchaudit_unknown_cases", "-fake", "no-such-fake",
				"-corpus", filepath.Join("..", "..", "..", "testdata", "sample-papers.txt"), "-out", out}, tc.args...)
			err := run(args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.unknown) {
				t.Errorf("run %q: err = %v, want an error naming %q", tc.args, err, tc.unknown)
			}
			if files, _ := os.ReadDir(out); len(files) > 0 {
				var names []string
				for _, f := range files {
					names = append(names, f.Name())
				}
				t.Errorf("run %q wrote %v, want nothing written", tc.args, names)
			}
		})
	}
}

// A run with a failed case exits non-zero (`make bench` fails), its summary written all the
// same: it used to exit 0, a failed benchmark passing for a finished one in a script or CI.
func TestRunWithAFailedCaseFails(t *testing.T) {
	out := t.TempDir()
	args := []string{"-set", "quick", "-only", "pipeline", "-cases", "C64", "-db", pgtest.BaseURL(), "-dbname", "benchaudit_failed_case",
		"-fake", filepath.Join(t.TempDir(), "no-such-fake"), "-corpus", filepath.Join("..", "..", "..", "testdata", "sample-papers.txt"), "-out", out}
	err := run(args, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "1 case failed") {
		t.Errorf("run of a case whose fake API cannot start: err = %v, want one saying 1 case failed", err)
	}
	summary, rerr := os.ReadFile(filepath.Join(out, "SUMMARY-quick-pipeline-subset.md"))
	if rerr != nil || !strings.Contains(string(summary), "INCOMPLETE (1 failed") {
		t.Errorf("summary of the failed run (%v) does not say it is incomplete:\n%.400s", rerr, summary)
	}
	// A run of some of the set's cases is written beside the set's summary, not over it.
	if _, err := os.Stat(filepath.Join(out, "SUMMARY-quick-pipeline.md")); err == nil {
		t.Error("a run of one case wrote SUMMARY-quick-pipeline.md, the summary of the set's pipeline run")
	}
}
