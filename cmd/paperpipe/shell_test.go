package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// These tests run paperpipe as a shell script or a cron job does: output redirected to a file
// that cannot take it, no HOME, flags written the way other tools take them.

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
		{"search", "--mode", "keyword", "experts"}, {"dlq", "list", "--json"}, {"reprocess", "--dry-run"}, {"migrate"}, {"list", "-h"}} {
		r := c.runWithStdout(full, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") {
			t.Errorf("paperpipe %s > /dev/full: exit %d, stderr %q; want 1 and the failed write named", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// `--fill false` is how many tools take a flag's value, but Go's flag package gives a
// true/false flag its value only after = (`--fill=false`): `--fill false` set --fill and left
// "false" as an argument, which a command taking none ignored, so `fit --fill false
// --activate false` filled and activated the new model's space. It is a usage error naming
// the way to write it, before anything is opened; 1 and 0 stay arguments
// (`batches abandon --force 1` abandons job 1).
func TestTrueOrFalseAfterABooleanFlagIsAUsageError(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fit", "--fill", "false", "--activate=false"}, "write --fill=false"},
		{[]string{"fit", "--fill=false", "-activate", "False"}, "write -activate=false"},
		{[]string{"list", "--json", "true"}, "write --json=true"},
		{[]string{"reprocess", "--dry-run", "false"}, "write --dry-run=false"},
		{[]string{"worker", "--exit-when-idle", "true"}, "write --exit-when-idle=true"},
	} {
		r := c.run(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
	// Not a usage error: the database is asked (and cannot be reached here).
	for _, args := range [][]string{{"batches", "abandon", "--force", "1"}, {"search", "--mode", "keyword", "true"}} {
		if r := c.run(args...); r.code != 1 {
			t.Errorf("paperpipe %s: exit %d, want 1 (the database unreachable)\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// An argument given to a command (or an action) that takes none is a usage error naming it,
// before anything is opened: ignored, `paperpipe list mixture` listed every paper as if it had
// searched, `worker --exit-when-idle 4` ran with the default concurrency, and `spaces check 1
// 2` checked space 1 only.
func TestArgumentsToACommandThatTakesNoneAreUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, args := range [][]string{{"list", "mixture"}, {"status", "--json", "x"}, {"worker", "--exit-when-idle", "4"},
		{"reprocess", "extra", "--dry-run"}, {"fit", "x"}, {"migrate", "x"}, {"version", "x"}, {"serve", "x"}, {"up", "x"},
		{"spaces", "list", "x"}, {"dlq", "list", "x"}} {
		r := c.run(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "unexpected argument") {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2 and the argument named", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := c.run("spaces", "check", "1", "2"); r.code != 2 {
		t.Errorf("spaces check 1 2: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

// A cron job or a service unit runs without HOME. With neither PAPERPIPE_DATA nor HOME, the
// embedded NATS server ran on $TMPDIR/paperpipe: `ingest` from cron queued its papers where the
// user's workers (HOME set, ~/.local/share/paperpipe) never looked, exit 0, in a directory
// every user of the machine shares and a reboot empties. It is an error naming the settings; a
// data directory that cannot be made names PAPERPIPE_DATA too.
func TestNoHomeAndNoDataDirectoryIsAnErrorNamingTheSetting(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	c := newCLI(t)
	env := withoutHomeOrData(c.env)
	c.env = append(env, "TMPDIR="+tmp)
	r := c.run("ingest", sampleFile)
	if r.code != 1 || !strings.Contains(r.stderr, "HOME is not set") || !strings.Contains(r.stderr, "set PAPERPIPE_DATA") {
		t.Errorf("ingest without HOME or PAPERPIPE_DATA: exit %d, stderr %q; want 1 and PAPERPIPE_DATA named", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(tmp, "paperpipe")); err == nil {
		t.Errorf("ingest without HOME made a data directory in TMPDIR")
	}
	// The database alone needs no data directory.
	c.ok("list", "--json")
	file := writeFile(t, tmp, "file", nil)
	c.env = append(env, "PAPERPIPE_DATA="+filepath.Join(file, "data"))
	if r := c.run("status"); r.code != 1 || !strings.Contains(r.stderr, "(PAPERPIPE_DATA)") {
		t.Errorf("status with PAPERPIPE_DATA under a file: exit %d, stderr %q; want 1 and PAPERPIPE_DATA named", r.code, r.stderr)
	}
}

// An earlier paperpipe run without HOME (a service unit, a cron job) kept its embedded queue
// in $TMPDIR/paperpipe, and upgraded, the same commands stop for want of a data directory. The
// message sent the user to ~/.local/share/paperpipe or a new directory of their choice, where
// nothing is queued: the papers ingested and not yet stored, and the dead letters, were left
// behind in the old directory, and nothing said so. It names the old queue and how to keep it.
func TestNoHomeNamesTheQueueAnEarlierReleaseKeptInTMPDIR(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	old := filepath.Join(tmp, "paperpipe") // where the earlier release put it without HOME
	c := newCLI(t)
	env := withoutHomeOrData(c.env)
	c.env = append(env, "PAPERPIPE_DATA="+old)
	c.ok("ingest", sampleFile)

	c.env = append(env, "TMPDIR="+tmp)
	for _, args := range [][]string{{"ingest", sampleFile}, {"worker", "--exit-when-idle"}} {
		r := c.run(args...)
		if r.code != 1 || !strings.Contains(r.stderr, "HOME is not set") || !strings.Contains(r.stderr, "PAPERPIPE_DATA="+old) {
			t.Errorf("%s without HOME beside an earlier release's queue in %s: exit %d, stderr %q; want 1 and that queue named as PAPERPIPE_DATA", args[0], old, r.code, r.stderr)
		}
	}
	// What it says to set finds the queued papers.
	c.env = append(env, "PAPERPIPE_DATA="+old)
	var st struct {
		Backlog []struct {
			Pending uint64 `json:"pending"`
		} `json:"backlog"`
	}
	c.json(&st, "status")
	if len(st.Backlog) == 0 || st.Backlog[0].Pending != 108 {
		t.Errorf("status with PAPERPIPE_DATA=%s: backlog %+v; want the 108 papers queued", old, st.Backlog)
	}
}

// A command's help, asked for with -h or --help, is its output: on standard output, exit 0, as
// `paperpipe help` is (`paperpipe ingest -h | less`, `… -h | grep format`); it went to standard
// error. A bad flag's message and usage stay on standard error, exit 2.
func TestCommandHelpGoesToStandardOutput(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, args := range [][]string{{"ingest", "-h"}, {"list", "--help"}, {"search", "-help"}, {"dlq", "list", "-h"}} {
		r := c.run(args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: paperpipe "+args[0]) || r.stderr != "" {
			t.Errorf("paperpipe %s: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout only", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	r := c.run("list", "--bogus")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "flag provided but not defined: -bogus\nUsage: paperpipe list") {
		t.Errorf("paperpipe list --bogus: exit %d, stdout %q, stderr %q; want 2, the error and the usage on stderr", r.code, r.stdout, r.stderr)
	}
}

// A crontab line, a systemd unit or `docker run -e` pass `PAPERPIPE_DATA=~/pp` as it is: the
// embedded server made a directory named ~ in the working directory, a second queue that the
// commands run from a shell (which expands ~) never saw. A leading ~ is the home directory.
func TestDataDirectoryWithATildeIsInTheHomeDirectory(t *testing.T) {
	t.Parallel()
	home, wd := t.TempDir(), t.TempDir()
	c := newCLI(t)
	env := withoutHomeOrData(c.env)
	cmd := exec.CommandContext(context.Background(), binary, "ingest", sampleFile)
	cmd.Env = append(env, "HOME="+home, "PAPERPIPE_DATA=~/pp")
	cmd.Dir = wd
	cmd.Args[2], _ = filepath.Abs(sampleFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, "pp", "nats.url")); err != nil {
		t.Errorf("PAPERPIPE_DATA=~/pp is not in HOME: %v", err)
	}
	if _, err := os.Stat(filepath.Join(wd, "~")); err == nil {
		t.Errorf("PAPERPIPE_DATA=~/pp made a directory named ~ in the working directory")
	}
}

// Before PAPERPIPE_DATA's leading ~ was the home directory, `PAPERPIPE_DATA=~/pp` in a crontab
// line or a unit made a queue in a directory named ~ in the working directory (a cron job's is
// HOME): papers ingested there never reached the workers. Upgraded, the same line uses HOME/pp,
// and the papers left in ./~/pp were never processed, with nothing to say they exist. Every
// command that runs the embedded queue warns, naming that directory, while it holds a queue.
func TestDataDirectoryWithATildeWarnsOfTheQueueAnEarlierReleaseMadeInADirectoryNamedTilde(t *testing.T) {
	t.Parallel()
	home, wd := t.TempDir(), t.TempDir()
	stray := filepath.Join(wd, "~", "pp")
	c := newCLI(t)
	env := withoutHomeOrData(c.env)
	c.env = append(env, "HOME="+home, "PAPERPIPE_DATA="+stray) // as the earlier release made it
	c.ok("ingest", sampleFile)

	for _, args := range [][]string{{"status"}, {"worker", "--exit-when-idle"}} {
		cmd := exec.CommandContext(context.Background(), binary, args...)
		cmd.Env = append(env, "HOME="+home, "PAPERPIPE_DATA=~/pp")
		cmd.Dir = wd
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
		if !strings.Contains(string(out), stray) || !strings.Contains(string(out), "PAPERPIPE_DATA="+stray) {
			t.Errorf("%s with PAPERPIPE_DATA=~/pp beside an earlier release's queue in %s: output %q; want a warning naming it", args[0], stray, out)
		}
	}
	// Once it is gone, nothing is said.
	if err := os.RemoveAll(filepath.Join(wd, "~")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(context.Background(), binary, "status")
	cmd.Env = append(env, "HOME="+home, "PAPERPIPE_DATA=~/pp")
	cmd.Dir = wd
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "level=WARN") {
		t.Errorf("status without a directory named ~: %v, output %q; want no warning", err, out)
	}
}

// withoutHomeOrData is env without HOME and PAPERPIPE_DATA, for a test to set them (or not) as
// a cron job or a unit would; with no room to spare, so that two appends to it share nothing.
func withoutHomeOrData(env []string) []string {
	return slices.Clip(slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "PAPERPIPE_DATA=")
	}))
}

// A misspelt flag is told the flag meant, as a misspelt command is told the command: `ingest
// --foramt jsonl` said only "flag provided but not defined: -foramt" under the usage (found in
// session 28, walking a lab's journey). A name close to none is told nothing more.
func TestAMisspeltFlagNamesTheFlagMeant(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ingest", "--foramt", "jsonl", "papers.jsonl"}, "paperpipe ingest: usage: flag provided but not defined: -foramt: did you mean --format?"},
		{[]string{"reprocess", "--dryrun"}, "did you mean --dry-run?"},
		{[]string{"search", "mixture", "-mdoe", "keyword"}, "did you mean --mode?"},
	} {
		r := c.run(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("paperpipe %s: exit %d, stderr:\n%s\nwant 2 and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
	if r := c.run("list", "--bogus"); r.code != 2 || strings.Contains(r.stderr, "did you mean") {
		t.Errorf("paperpipe list --bogus: exit %d, stderr:\n%s\nwant 2 and no flag named as meant", r.code, r.stderr)
	}
}
