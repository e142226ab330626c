package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helpCommands returns the commands `paperpipe help` lists.
func helpCommands(t *testing.T, c *cli) []string {
	t.Helper()
	var cmds []string
	for _, l := range strings.Split(c.ok("help").stdout, "\n") {
		if strings.HasPrefix(l, "  ") && len(strings.Fields(l)) > 1 {
			cmds = append(cmds, strings.Fields(l)[0])
		}
	}
	if len(cmds) < 20 {
		t.Fatalf("help lists %d commands: %v", len(cmds), cmds)
	}
	return cmds
}

// helpFlag is one flag as a command's -h shows it: its name and the name of its value ("" for
// a true/false flag).
type helpFlag struct{ name, value string }

// flagLine is a flag's line in -h: "  -name" and the value's name, up to the tab or the line's
// end (the flag package's PrintDefaults).
var flagLine = regexp.MustCompile(`^  -([a-z0-9-]+)( [^\t]*)?\t?$`)

// helpFlags returns the flags `paperpipe CMD -h` shows.
func helpFlags(t *testing.T, c *cli, cmd string) []helpFlag {
	t.Helper()
	var flags []helpFlag
	for _, l := range strings.Split(c.ok(cmd, "-h").stdout, "\n") {
		if m := flagLine.FindStringSubmatch(l); m != nil {
			flags = append(flags, helpFlag{m[1], strings.TrimSpace(m[2])})
		}
	}
	return flags
}

// A flag's -h line names its value in one word (`-ids FILE`, `-since DATE`), and a true/false
// flag none. The flag package takes the first `quoted` word of a flag's help as its value's
// name, also for a true/false flag: `tldrs -h` showed `-force paperpipe reprocess`, a flag
// that seemed to take a command line, from "until `paperpipe reprocess` writes it".
func TestEveryFlagsHelpNamesItsValueInOneWord(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, cmd := range helpCommands(t, c) {
		for _, f := range helpFlags(t, c, cmd) {
			if strings.Contains(f.value, " ") {
				t.Errorf("%s -h: -%s %s: a value's name is one word (a `quoted` word in the flag's help becomes it)", cmd, f.name, f.value)
			}
		}
	}
}

// What a command's -h says of Ctrl-C is what it does: `ingest -h` said it ends with exit 1,
// while ingest, stopped with work left, ends by the signal (130 for Ctrl-C, 143 for SIGTERM:
// TestAnInterruptedIngestStopsTheScriptItRunsIn), as README and `paperpipe help` say.
func TestHelpGivesAStopsExitStatus(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, cmd := range helpCommands(t, c) {
		help := strings.Join(strings.Fields(c.ok(cmd, "-h").stdout), " ")
		for _, s := range strings.SplitAfter(help, ". ") {
			if !strings.Contains(s, "Ctrl-C") {
				continue
			}
			if regexp.MustCompile(`\bexit 1\b`).MatchString(s) || !strings.Contains(s, "130") {
				t.Errorf("%s -h: %q: a command that Ctrl-C stops with work left exits 130 (143 for SIGTERM)", cmd, s)
			}
		}
	}
}

// readmeCommandLines returns README's paperpipe command lines: the lines of its sh blocks and
// its `code spans` that run `paperpipe CMD` (or bin/paperpipe, after variables), each from the
// command's name up to a comment, a pipe or the end, as fields.
func readmeCommandLines(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	inBlock := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "```"):
			inBlock = !inBlock
		case inBlock:
			texts = append(texts, l)
		default:
			for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(l, -1) {
				texts = append(texts, m[1])
			}
		}
	}
	var lines [][]string
	cmd := regexp.MustCompile(`(?:^|[\s(;&])(?:bin/)?paperpipe ([a-z][a-z-]*\b.*)`)
	for _, s := range texts {
		m := cmd.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		line := m[1]
		for _, stop := range []string{" #", "|", ";", "&&", ")"} {
			if i := strings.Index(line, stop); i >= 0 {
				line = line[:i]
			}
		}
		lines = append(lines, strings.Fields(line))
	}
	if len(lines) < 50 {
		t.Fatalf("README holds %d paperpipe command lines", len(lines))
	}
	return lines
}

// Every flag README gives a paperpipe command is one of its flags, in the form its -h shows
// (two dashes, or one: the flag package takes both): a flag renamed or dropped in the code and
// not in README, or misspelt in README, fails here.
func TestREADMEsCommandLinesUseTheirCommandsFlags(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	known := map[string][]string{}
	for _, cmd := range helpCommands(t, c) {
		var names []string
		for _, f := range helpFlags(t, c, cmd) {
			names = append(names, f.name)
		}
		known[cmd] = append(names, "h", "help")
	}
	for _, line := range readmeCommandLines(t) {
		names, ok := known[line[0]]
		if !ok {
			continue // prose: "paperpipe turns …"
		}
		for _, w := range line[1:] {
			if !strings.HasPrefix(w, "-") || w == "-" || w == "--" {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
			name = strings.TrimRight(name, ".,:…`'\"")
			if name == "" || strings.Trim(name, "0123456789") == "" {
				continue // - for standard input; a negative number
			}
			if !slices.Contains(names, name) {
				t.Errorf("README: `paperpipe %s`: %s is not a flag of %s (its -h: %v)", strings.Join(line, " "), w, line[0], names)
			}
		}
	}
}

// Every flag of every command is in README: in a paragraph (a command line, a table with what
// introduces it) that names the command, or in Configuration's table beside the variable it
// overrides. A flag added to a command and to its -h only, which a reader of README never
// learns of, fails here (list --after, worker --consumer, fit --dimensions and --max-docs did).
func TestREADMENamesEveryCommandsFlags(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var paras []string
	settings := map[string]bool{} // the flags of Configuration's table: each overrides its variable, in every command that takes it
	for _, p := range regexp.MustCompile(`\n\s*\n`).Split(string(b), -1) {
		if strings.HasPrefix(p, "|") && len(paras) > 0 {
			p = paras[len(paras)-1] + "\n" + p // a table, with what introduces it (reprocess's flags)
		}
		paras = append(paras, p)
		for _, m := range regexp.MustCompile("(?m)^\\| `[A-Z_]+`[^|]* \\| `--([a-z-]+)` \\|").FindAllStringSubmatch(p, -1) {
			settings[m[1]] = true
		}
	}
	if len(settings) < 5 {
		t.Fatalf("README's Configuration table names %d flags: %v", len(settings), settings)
	}
	for _, cmd := range helpCommands(t, c) {
		named := regexp.MustCompile("(?:^|[\\s`(])(?:bin/)?(?:paperpipe )?" + regexp.QuoteMeta(cmd) + "(?:$|[\\s`),:.])")
		for _, f := range helpFlags(t, c, cmd) {
			flag := regexp.MustCompile("(?:^|[\\s`(|])--?" + regexp.QuoteMeta(f.name) + "(?:$|[^a-z0-9-])")
			found := settings[f.name] || slices.ContainsFunc(paras, func(p string) bool { return named.MatchString(p) && flag.MatchString(p) })
			if !found {
				t.Errorf("README names no --%s of `paperpipe %s` (in a paragraph that names the command)", f.name, cmd)
			}
		}
	}
}

// `paperpipe help COMMAND` is the command's help, as `go help build` and `git help log` are:
// it printed the list of commands and exited 0, the command named left unread, and so did
// `paperpipe help inget` (a misspelling) and `paperpipe help ingest list`, where every other
// argument that names nothing is a usage error.
func TestHelpOfACommandIsItsHelp(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	r := c.run("help", "ingest")
	if want := c.ok("ingest", "-h").stdout; r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("help ingest: exit %d\nstdout: %s\nstderr: %s\nwant 0 and ingest -h's help on standard output:\n%s", r.code, r.stdout, r.stderr, want)
	}
	if r := c.run("help", "inget"); r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, `unknown command "inget": did you mean "ingest"?`) {
		t.Errorf("help inget: exit %d\nstdout: %s\nstderr: %s\nwant 2 naming the unknown command", r.code, r.stdout, r.stderr)
	}
	if r := c.run("help", "ingest", "list"); r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "name one command") {
		t.Errorf("help ingest list: exit %d\nstdout: %s\nstderr: %s\nwant 2 (usage)", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"help"}, {"help", "help"}, {"help", "-h"}, {"--help"}} {
		if r := c.run(args...); r.code != 0 || !strings.Contains(r.stdout, "Usage: paperpipe COMMAND") {
			t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s\nwant 0 and the list of commands", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}

// summarize and embed say in their help what a bad record and a source that fails do to the
// exit status, and do it: their help said nothing of either (README and ingest's help did), and
// a script that took summarize's exit 1 for a failed run, or a skipped record for none, learnt
// otherwise only from the README.
func TestSummarizeAndEmbedHelpGivesTheExitStatusOfABadRecordAndAFailedSource(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := t.TempDir()
	good := `{"id": "a1", "title": "Sparse routing", "abstract": "We route each token to two experts of sixty four and train the router with a balancing loss, which keeps every expert busy."}` + "\n"
	bad := `{"id": "a2", "title": "No abstract", "abstract": ""}` + "\n"
	mixed := dir + "/mixed.jsonl"
	if err := os.WriteFile(mixed, []byte(good+bad), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"summarize", "embed"} {
		help := strings.Join(strings.Fields(c.ok(cmd, "-h").stdout), " ")
		if !strings.Contains(help, "A bad record is reported with its file and line and skipped, and the exit status is 1") ||
			!strings.Contains(help, "a source that cannot be read to its end stops the command, exit 1") {
			t.Errorf("%s -h says nothing of a bad record's or a failed source's exit status:\n%s", cmd, help)
		}
		if r := c.run(cmd, mixed); r.code != 1 || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stderr, "mixed.jsonl:2") {
			t.Errorf("%s with a bad record: exit %d, %d lines out, stderr %q; want 1, the good record's line, the bad one named by file and line",
				cmd, r.code, strings.Count(r.stdout, "\n"), r.stderr)
		}
		if r := c.run(cmd, dir+"/missing.jsonl", mixed); r.code != 1 || r.stdout != "" {
			t.Errorf("%s with a missing source first: exit %d, stdout %q; want 1 and nothing read after it", cmd, r.code, r.stdout)
		}
	}
}

// Each line of `paperpipe help` has its command, its arguments and its description in their
// columns: dlq's arguments (list|replay|drop) and tldrs' (the whole prune syntax) ran into the
// description, which read "list|replay|drop list, replay or drop dead-lettered messages".
func TestHelpListsEachCommandsArgumentsInTheirColumn(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	lines := strings.Split(c.ok("help").stdout, "\n")
	start := slices.Index(lines, "Commands:")
	if start < 0 {
		t.Fatal("help has no Commands: section")
	}
	descCol := -1
	for _, l := range lines[start+1:] {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		cmd := strings.Fields(l)[0]
		short := ""
		for _, k := range commands() {
			if k.name == cmd {
				short = k.short
			}
		}
		col := strings.Index(l, short)
		if short == "" || col < 0 {
			t.Fatalf("help line %q is no command's", l)
		}
		if descCol < 0 {
			descCol = col
		}
		if col != descCol {
			t.Errorf("help line %q: its description starts at column %d, not %d after its arguments' column", l, col, descCol)
		}
	}
}

// fit's -h gives the bounds fit holds --dimensions and --max-docs to, as README does (4 to
// 16,000): it said "vector dimensions" alone, and the bounds came only as a usage error.
func TestFitHelpGivesTheBoundsOfItsNumbers(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	help := c.ok("fit", "-h").stdout
	for _, want := range []string{"vector dimensions, 4 to 16000", "at most N papers, at least 2"} {
		if !strings.Contains(help, want) {
			t.Errorf("fit -h lacks %q:\n%s", want, help)
		}
	}
	for _, args := range [][]string{{"--dimensions", "3"}, {"--dimensions", "16001"}, {"--max-docs", "1"}} {
		if r := c.run(append([]string{"fit", "--fill=false"}, args...)...); r.code != 2 {
			t.Errorf("fit %s: exit %d, stderr %q; want 2 (outside the bounds its help gives)", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// A bad setting does not keep a command's help from the user: `paperpipe CMD -h` prints it,
// exits 0 and warns of the setting, while a command that runs still refuses it (exit 2). Help
// had refused it too, so it could not be read by the user mending the setting.
func TestABadSettingIsAWarningForACommandsHelp(t *testing.T) {
	t.Parallel()
	good := newCLI(t)
	bad := newCLI(t, "PAPERPIPE_ACK_WAIT=2h", "PAPERPIPE_CONCURRENCY=many")
	for _, cmd := range helpCommands(t, good) {
		want := good.ok(cmd, "-h").stdout
		r := bad.run(cmd, "-h")
		if r.code != 0 || r.stdout != want {
			t.Errorf("%s -h with a bad setting: exit %d\nstdout: %s\nstderr: %s\nwant 0 and the help it gives without (defaults included):\n%s", cmd, r.code, r.stdout, r.stderr, want)
			continue
		}
		for _, name := range []string{"PAPERPIPE_ACK_WAIT", "PAPERPIPE_CONCURRENCY"} {
			if !strings.Contains(r.stderr, "warning: "+name) {
				t.Errorf("%s -h with a bad setting: stderr does not warn of %s:\n%s", cmd, name, r.stderr)
			}
		}
	}
	// Commands that run refuse it still, "help" as an argument (a file, a space of that name)
	// included, and version (the settings' cheapest check).
	for _, args := range [][]string{{"status"}, {"ingest", "help"}, {"list", "--json"}, {"version"}} {
		if r := bad.run(args...); r.code != 2 || !strings.Contains(r.stderr, "PAPERPIPE_CONCURRENCY") || strings.Contains(r.stderr, "warning") {
			t.Errorf("%s with a bad setting: exit %d\nstderr: %s\nwant 2 refusing the first bad setting, PAPERPIPE_CONCURRENCY", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
