// Package deploy_test tests the scripts that make "two commands on a fresh machine" true:
// .ci/run and deploy/test-deps.sh (install what `make test` needs), the Makefile, and
// deploy/services.sh. Where they would install or start something, the command they call
// (apt-get, docker) is a stand-in that records its calls, first in PATH — apt-get "installs" a
// package as a command that records its calls: no network, no root, nothing installed.
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeAptGet is apt-get for the scripts: it logs its arguments, and `install` puts an
// executable for each package in its own directory, which logs how it was called.
const fakeAptGet = `#!/bin/sh
echo "apt-get $*" >>"$FAKE_LOG"
[ "$1" = -o ] && shift 2
[ "$1" = install ] || exit 0
for p in "$@"; do
	case "$p" in -*) continue ;; esac
	printf '#!/bin/sh\necho "${0##*/} $* (in $(pwd))" >>"$FAKE_LOG"\n' >"${0%/*}/$p"
	/bin/chmod +x "${0%/*}/$p"
done
`

// fakeMachine is a directory for PATH holding apt-get, an id that says root (so no sudo is
// needed), the given host commands and empty stand-ins for the named ones; it returns the
// directory and the log.
func fakeMachine(t *testing.T, host []string, present ...string) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	log = filepath.Join(t.TempDir(), "calls.log")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("apt-get", fakeAptGet)
	write("id", "#!/bin/sh\necho 0\n")
	for _, p := range present {
		write(p, "#!/bin/sh\nexit 0\n")
	}
	for _, h := range host {
		path, err := exec.LookPath(h)
		if err != nil {
			t.Skipf("%s is not installed", h)
		}
		if err := os.Symlink(path, filepath.Join(dir, h)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, log
}

// runScript runs a bash script of the repository with PATH=dir only, returning its output
// and the calls logged.
func runScript(t *testing.T, script, dir, log string, env ...string) (out, calls string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	cmd := exec.Command(bash, script)
	cmd.Env = append([]string{"PATH=" + dir, "FAKE_LOG=" + log, "HOME=" + t.TempDir()}, env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	l, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b), string(l)
}

// installed returns the packages of the apt-get install calls logged.
func installed(calls string) []string {
	var pkgs []string
	for line := range strings.Lines(calls) {
		f := strings.Fields(line)
		if i := slices.Index(f, "install"); len(f) > 0 && f[0] == "apt-get" && i > 0 {
			for _, p := range f[i+1:] {
				if !strings.HasPrefix(p, "-") {
					pkgs = append(pkgs, p)
				}
			}
		}
	}
	return pkgs
}

// TestTestDepsInstallsTheCCompilerThatRaceNeeds: `make test` runs `go test -race`, which needs
// cgo, and Go turns cgo off where it finds no C compiler — a fresh Debian has no gcc (priority
// optional) — and then stops with "-race requires cgo". test-deps.sh, which "installs what the
// tests need", installed chromium and fonts only, so make test failed on a fresh machine.
func TestTestDepsInstallsTheCCompilerThatRaceNeeds(t *testing.T) {
	dir, log := fakeMachine(t, nil, "chromium")
	_, calls := runScript(t, "test-deps.sh", dir, log)
	if pkgs := installed(calls); !slices.Contains(pkgs, "gcc") {
		t.Errorf("test-deps.sh on a machine without gcc installed %q, want gcc among them; calls:\n%s", pkgs, calls)
	}

	// With gcc (or a CC of the user's) it leaves the compiler alone.
	for _, tc := range []struct {
		present []string
		env     []string
	}{{present: []string{"chromium", "gcc"}}, {present: []string{"chromium"}, env: []string{"CC=clang"}}} {
		dir, log := fakeMachine(t, nil, tc.present...)
		_, calls := runScript(t, "test-deps.sh", dir, log, tc.env...)
		if pkgs := installed(calls); slices.Contains(pkgs, "gcc") {
			t.Errorf("test-deps.sh with %q and %q installed %q: gcc needs no install", tc.present, tc.env, pkgs)
		}
	}
}

// TestCIRunInstallsMake: CI runs .ci/run on a fresh Debian 12, which has no make (priority
// optional): `exec make test` ended at "make: not found". It installs make first, then runs
// make test in the repository's root.
func TestCIRunInstallsMake(t *testing.T) {
	dir, log := fakeMachine(t, []string{"dirname"})
	_, calls := runScript(t, "../.ci/run", dir, log, "CI=true")
	if pkgs := installed(calls); !slices.Contains(pkgs, "make") {
		t.Fatalf(".ci/run without make installed %q, want make; calls:\n%s", pkgs, calls)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if want := "make test (in " + root + ")"; !strings.Contains(calls, want) {
		t.Errorf(".ci/run did not run %q; calls:\n%s", want, calls)
	}
}

// TestMakeLintChecksEveryGoFile: `make lint` formatted only the files `git ls-files` named, so
// a new file not yet added passed unformatted, and outside a git checkout (a source archive,
// no git installed) the list was empty and gofmt, given no file, read its standard input and
// passed having checked nothing.
func TestMakeLintChecksEveryGoFile(t *testing.T) {
	for _, tool := range []string{"make", "gofmt", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, gitRepo := range []bool{true, false} {
		dir := t.TempDir()
		write := func(name, body string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("Makefile", string(makefile))
		write("ok.go", "package p\n\nfunc OK() {}\n")
		if gitRepo {
			git := exec.Command("sh", "-c", "git init -q && git add Makefile ok.go")
			git.Dir = dir
			if out, err := git.CombinedOutput(); err != nil {
				t.Fatalf("git: %v\n%s", err, out)
			}
		}
		write("new.go", "package p\nfunc  New( ) {  }\n") // not added to git, not formatted
		lint := exec.Command("make", "-s", "lint", "GO=true")
		lint.Dir = dir
		out, err := lint.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "new.go") {
			t.Errorf("make lint (git checkout: %v) with an unformatted new.go: %v, want a failure naming new.go\n%s", gitRepo, err, out)
		}
	}
}

// TestServicesThroughASymlinkUsesTheComposeFileBesideTheScript: the Docker back end named
// compose.yaml in the directory of the path services.sh was called by, so through a symlink
// (~/bin/services -> deploy/services.sh) up, down and status asked Docker Compose for a file
// that is not there. docker here is a stand-in that answers and records its calls.
func TestServicesThroughASymlinkUsesTheComposeFileBesideTheScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	dir, log := t.TempDir(), filepath.Join(t.TempDir(), "calls.log")
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte("#!/bin/sh\necho \"docker $*\" >>\"$FAKE_LOG\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("services.sh")
	if err != nil {
		t.Fatal(err)
	}
	links := t.TempDir()
	if err := os.Symlink(script, filepath.Join(links, "services")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("services", filepath.Join(links, "services2")); err != nil { // a link to a link, relative
		t.Fatal(err)
	}
	for _, link := range []string{"services", "services2"} {
		if err := os.Truncate(log, 0); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		cmd := exec.Command(bash, filepath.Join(links, link), "status")
		cmd.Dir = t.TempDir()
		// The host's PATH after the stand-in: the script needs its ordinary tools.
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "FAKE_LOG="+log, "PAPERPIPE_SERVICES=docker")
		out, _ := cmd.CombinedOutput() // status exits 3: the stand-in lists no running container
		calls, err := os.ReadFile(log)
		if err != nil {
			t.Fatalf("docker was not called: %v\n%s", err, out)
		}
		want := "-f " + filepath.Join(filepath.Dir(script), "compose.yaml") + " "
		if !strings.Contains(string(calls), want) {
			t.Errorf("services.sh through the symlink %s called Docker Compose without %q:\n%s\n%s", link, want, calls, out)
		}
	}
}
