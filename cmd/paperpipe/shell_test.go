package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// These tests run paperpipe as a shell script or a cron job does: output redirected to a file
// that cannot take it, no HOME, flags written the way other tools take them.

// runWithStdout runs paperpipe with its standard output on out.
func (c *cli) runWithStdout(out *os.File, args ...string) result {
	c.t.Helper()
	cmd := exec.CommandContext(context.Background(), binary, args...)
	cmd.Env = c.env
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	err := cmd.Run()
	r := result{stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("paperpipe %v: %v", args, err)
	}
	return r
}

// Results that cannot be written (`paperpipe list > out.txt` on a full disk, here /dev/full)
// are an error, exit 1, naming the write: the readable tables, show, search, status, version
// and help wrote with unchecked fmt.Printf and tabwriter calls, lost their output and exited
// 0, and a cron job went on with an empty file as if it were the answer. --json already failed.
func TestResultsLostToAFullDiskAreAnError(t *testing.T) {
	t.Parallel()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	for _, args := range [][]string{{"help"}, {"version"}, {"list"}, {"list", "--json"}, {"status"}, {"spaces"},
		{"show", "Branch-Train-Merge"}, {"related", "Branch-Train-Merge"}, {"search", "mixture of experts"},
		{"search", "--mode", "keyword", "experts"}, {"dlq", "list"}, {"reprocess", "--dry-run"}, {"migrate"}} {
		r := c.runWithStdout(full, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") {
			t.Errorf("paperpipe %s > /dev/full: exit %d, stderr %q; want 1 and the failed write named", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
