package main

import (
	"regexp"
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
