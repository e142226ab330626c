package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// A PAPERPIPE_ variable paperpipe does not read is warned about, with the setting it most
// likely misspells: it was ignored without a word, and the default used (a misspelled
// PAPERPIPE_API_TOKEN left writes open).
func TestUnknownSettingIsWarnedAbout(t *testing.T) {
	t.Parallel()
	var w bytes.Buffer
	warnUnknownSettings(&w, []string{
		"PAPERPIPE_CONCURENCY=5", "PAPERPIPE_APITOKEN=s3cret", "PAPERPIPE_FOO=1", "PAPERPIPE_X\x1b]52;c;=1",
		"PAPERPIPE_CONCURRENCY=5", "PAPERPIPE_TEST_DATABASE_URL=postgres://x", "HOME=/root", "MY_PAPERPIPE_X=1",
	})
	got := strings.Split(strings.TrimSpace(w.String()), "\n")
	want := []string{
		"paperpipe: warning: PAPERPIPE_CONCURENCY is not a setting of paperpipe, and is ignored: did you mean PAPERPIPE_CONCURRENCY?",
		"paperpipe: warning: PAPERPIPE_APITOKEN is not a setting of paperpipe, and is ignored: did you mean PAPERPIPE_API_TOKEN?",
		"paperpipe: warning: PAPERPIPE_FOO is not a setting of paperpipe, and is ignored: the README's Configuration lists the settings",
		`paperpipe: warning: PAPERPIPE_X\x1b]52;c; is not a setting of paperpipe, and is ignored: the README's Configuration lists the settings`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(w.String(), "s3cret") {
		t.Errorf("a warning shows a variable's value:\n%s", w.String())
	}

	// The command warns at start, whatever it is.
	r := newCLI(t, "PAPERPIPE_CONCURENCY=5").run("version")
	if r.code != 0 || !strings.Contains(r.stderr, "did you mean PAPERPIPE_CONCURRENCY?") {
		t.Errorf("version with PAPERPIPE_CONCURENCY: exit %d, stderr %q", r.code, r.stderr)
	}
}

// OPENAI_API_BASE (the name the openai Python library before 1.0 and LangChain read) set
// without OPENAI_BASE_URL had paperpipe call OpenAI's own API, not the lab's server, without a
// word: it warns, naming the variable to set; with OPENAI_BASE_URL set it says nothing.
func TestOtherToolsNameOfTheAPIURLIsWarnedAbout(t *testing.T) {
	t.Parallel()
	var w bytes.Buffer
	warnOtherAPINames(&w, []string{"OPENAI_API_BASE=http://gpu-box:8000/v1", "HOME=/root"})
	if got := w.String(); !strings.Contains(got, "OPENAI_API_BASE is set") || !strings.Contains(got, "set OPENAI_BASE_URL") ||
		strings.Contains(got, "gpu-box") {
		t.Errorf("OPENAI_API_BASE without OPENAI_BASE_URL: %q; want a warning naming both, without the value", got)
	}
	w.Reset()
	warnOtherAPINames(&w, []string{"OPENAI_API_BASE=http://gpu-box:8000/v1", "OPENAI_BASE_URL=http://gpu-box:8000/v1"})
	if w.Len() != 0 {
		t.Errorf("OPENAI_API_BASE beside OPENAI_BASE_URL: %q; want nothing", w.String())
	}
	r := newCLI(t, "OPENAI_API_BASE=http://gpu-box:8000/v1").run("version")
	if r.code != 0 || !strings.Contains(r.stderr, "OPENAI_API_BASE is set") {
		t.Errorf("version with OPENAI_API_BASE: exit %d, stderr %q", r.code, r.stderr)
	}
}

// The list of settings is the variables the code reads and the README documents: a setting
// added to one and not the list would be warned about as unknown.
func TestSettingsListIsComplete(t *testing.T) {
	t.Parallel()
	lit := regexp.MustCompile(`"(PAPERPIPE_[A-Z0-9_]+)"`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "settings.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(settings, m[1]) {
				t.Errorf("%s reads %s, which is not in settings", f, m[1])
			}
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// A row's first cell names one variable or more: | `PAPERPIPE_RPM` / `PAPERPIPE_TPM` |
	row := regexp.MustCompile("(?m)^\\| (`PAPERPIPE_[^|]*)\\|")
	name := regexp.MustCompile("`(PAPERPIPE_[A-Z0-9_]+)`")
	documented := map[string]bool{}
	for _, r := range row.FindAllStringSubmatch(string(readme), -1) {
		for _, m := range name.FindAllStringSubmatch(r[1], -1) {
			documented[m[1]] = true
			if !slices.Contains(settings, m[1]) {
				t.Errorf("README documents %s, which is not in settings", m[1])
			}
		}
	}
	for _, s := range settings {
		if !documented[s] {
			t.Errorf("%s is in settings but has no row in the README's tables", s)
		}
	}
}

// The variables of the repository's scripts and tests (otherTools) are each named in README.md,
// DEVELOPERS.md or deploy/README.md: PAPERPIPE_SKIP_TEST_DEPS (make test without apt-get),
// PAPERPIPE_DEBIAN_MIRROR (the chroot's mirror), PAPERPIPE_NATS_PORT (compose's NATS port) and
// PAPERPIPE_CHAOS (the full chaos runs) were in the scripts' comments alone, where a developer
// who meets the step they change does not look.
func TestOtherToolsSettingsAreDocumented(t *testing.T) {
	t.Parallel()
	var docs string
	for _, f := range []string{"../../README.md", "../../DEVELOPERS.md", "../../deploy/README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs += string(b)
	}
	for _, name := range otherTools {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(docs) {
			t.Errorf("%s is read by the repository's scripts or tests, and named in none of README.md, DEVELOPERS.md, deploy/README.md", name)
		}
	}
}

// A table of the README has one row per thing it describes: two rows that begin alike are
// two versions of one row, as a merge of two changes to it leaves them (the table of failures
// had each of "the API cannot be reached" and "the queue is full" twice, each copy with a
// part of the day's changes), and a reader finds one and misses the other's.
func TestREADMETablesHaveEachRowOnce(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "|") {
			clear(seen) // a table ends
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
		if first = strings.TrimSpace(first); first == "" || strings.Trim(first, "-: ") == "" {
			continue
		}
		// Its start: the two versions of a long first cell differ further on.
		if len(first) > 40 {
			first = first[:40]
		}
		if n, ok := seen[first]; ok {
			t.Errorf("README.md:%d repeats the row of line %d (%.60q…)", i+1, n, first)
		}
		seen[first] = i + 1
	}
}
