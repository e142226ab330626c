// Command paperpipe turns research-paper abstracts into one-line TL;DRs and embeddings and makes
// the archive searchable by meaning. Run `paperpipe help` for the commands.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// command is one subcommand.
type command struct {
	name  string
	args  string
	short string
	run   func(ctx context.Context, c *config, args []string) error
}

func commands() []command {
	return []command{
		{"up", "", "run NATS (embedded unless NATS_URL is set), a worker and the HTTP server (web UI, API) in one process", cmdUp},
		{"ingest", "FILE|URL|-", "publish abstracts (text, JSONL, arXiv OAI, Atom, RSS, HF daily) for processing", cmdIngest},
		{"worker", "", "consume abstracts and write TL;DRs and embeddings", cmdWorker},
		{"serve", "", "serve the HTTP JSON API, the web UI and /metrics", cmdServe},
		{"show", "ID|TITLE", "show one paper with its TL;DR", cmdShow},
		{"related", "ID|TITLE", "the papers nearest to one paper", cmdRelated},
		{"search", "TEXT", "papers nearest to free text", cmdSearch},
		{"list", "", "TL;DRs, newest first", cmdList},
		{"summarize", "FILE|URL|-", "print TL;DRs as JSON lines, without database or queue", cmdSummarize},
		{"embed", "FILE|URL|-", "print embeddings as JSON lines, without database or queue", cmdEmbed},
		{"status", "", "backlog, workers, processed, dead letters and API usage", cmdStatus},
		// The list names a command's arguments in its column; a long syntax is the command's -h's
		// (dlq's "list|replay|drop" and tldrs' whole prune ran into their descriptions).
		{"dlq", "ACTION", "list, show, replay or drop dead-lettered messages", cmdDLQ},
		{"reprocess", "", "write missing or stale TL;DRs and embeddings for the configured models (--dry-run, --batch-api)", cmdReprocess},
		{"fit", "", "fit the offline embedder on the archive, embed every paper with it, and activate it", cmdFit},
		{"batches", batchesArgs, "list the open Batch API jobs of `reprocess --batch-api`; abandon one that cannot be collected; withheld: the TL;DRs the API would not give", cmdBatches},
		{"spaces", "[ACTION]", "list embedding spaces with coverage and index; drop, check (recall) or reindex one", cmdSpaces},
		{"tldrs", "[ACTION]", "list the stored TL;DRs by model and prompt version; prune those of versions no longer used (--dry-run)", cmdTLDRs},
		{"activate", "SPACE", "make an embedding space the one queries use", cmdActivate},
		{"remove", "ID...", "remove papers with their TL;DRs, vectors and Batch API items (--from FILE: what a file ingested; --dry-run)", cmdRemove},
		{"export", "[-o FILE]", "write papers with their TL;DRs (and vectors: --vectors) as JSON lines, which ingest and import-embeddings read", cmdExport},
		{"import", "FILE", "load an export into this archive: its papers with their TL;DRs and vectors, with no API call and no queue", cmdImport},
		{"import-tldrs", "FILE|-", "load the TL;DRs of an export, with no API calls, for the papers stored with the same text", cmdImportTLDRs},
		{"import-embeddings", "FILE|-", "load precomputed vectors (JSONL) into a space, with no API calls", cmdImportEmbeddings},
		{"migrate", "", "apply database migrations (also done at start)", cmdMigrate},
		{"version", "", "print paperpipe's version (also --version)", cmdVersion},
	}
}

// version is the version paperpipe was built as: "dev" unless the build sets it, as the
// container image's does (deploy/Dockerfile: -ldflags "-X main.version=${VERSION}").
var version = "dev"

func cmdVersion(_ context.Context, _ *config, args []string) error {
	fs := newFlagSet("version", "", "Print paperpipe's version.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "paperpipe", version)
	return nil
}

func main() {
	exit(run(os.Args[1:]))
}

// exit ends the process with code; a signal's status (signalExitStatus of a stop signal) by
// that signal itself. A shell waiting for a command that Ctrl-C stopped goes on with its
// script when the command exits, whatever its status, and stops only when the command died
// of the SIGINT (bash's "wait and cooperative exit"): a command that says what it did on a
// stop and then exits 1 or 130 made `for f in *.jsonl; do paperpipe ingest "$f"; done` go on
// to the next file at every Ctrl-C. A signal ignored since the start (SIGHUP under nohup)
// does not end it: then the status is code all the same.
func exit(code int) {
	if s, ok := exitSignal(code); ok {
		signal.Reset(s)
		if syscall.Kill(os.Getpid(), s) == nil {
			time.Sleep(time.Second) // delivered by then; the status below otherwise
		}
	}
	os.Exit(code)
}

// exitSignal is the stop signal whose status is code, by which exit ends the process, and
// whether there is one. A signal the process started with ignored has none: restored, its
// disposition ignores it again, and exit waited a second for it in vain (SIGINT: a job a shell
// without job control starts in the background is stopped by it, as Go hands it over).
func exitSignal(code int) (syscall.Signal, bool) {
	for _, sig := range stopSignals() {
		if s, ok := sig.(syscall.Signal); ok && code == signalExitStatus(s) && !ignoredAtStart[s] {
			return s, true
		}
	}
	return 0, false
}

// ignoredAtStart are the stop signals the process started with ignored, read before run asks
// for them (signal.Notify undoes the ignoring).
var ignoredAtStart = map[syscall.Signal]bool{
	syscall.SIGINT:  signal.Ignored(syscall.SIGINT),
	syscall.SIGTERM: signal.Ignored(syscall.SIGTERM),
	syscall.SIGHUP:  signal.Ignored(syscall.SIGHUP),
}

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr) // a command is missing: a usage error
		return 2
	}
	isHelp := func(a string) bool { return a == "help" || a == "-h" || a == "--help" }
	if args[0] == "help" && len(args) > 1 && !isHelp(args[1]) {
		// `paperpipe help ingest`: ingest's help, as `paperpipe ingest -h` prints it; a name
		// that is no command is said to be one below.
		if len(args) > 2 {
			fmt.Fprintf(os.Stderr, "paperpipe help: usage: name one command, as in `paperpipe help %s`\n", termSafe(args[1], false))
			return 2
		}
		args = []string{args[1], "-h"}
	}
	if isHelp(args[0]) {
		usage(stdout)
		if err := stdout.failed(); err != nil {
			fmt.Fprintf(os.Stderr, "paperpipe: %v\n", err)
			return 1
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == args[0] {
			cmd = &c
			break
		}
	}
	if cmd == nil {
		// With the command meant named, that is the answer: the whole usage after it (40
		// lines) scrolled it out of sight. Without one, the usage lists the commands.
		if meant := commandMeant(args); meant != "" {
			fmt.Fprintf(os.Stderr, "paperpipe: unknown command %q%s\n`paperpipe help` lists the commands.\n", args[0], meant)
			return 2
		}
		fmt.Fprintf(os.Stderr, "paperpipe: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return 2
	}
	// The second signal's channel subscribes now, with the first's: subscribed once the first
	// had ended sigCtx, it missed a second signal that came in between (two Ctrl-C in a row),
	// which no one then read, and the process drained on.
	// The first signal ends sigCtx, once stoppedBy holds it: a command it stopped with work
	// left ends by it (see exit).
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, stopSignals()...)
	defer signal.Stop(signals)
	sigCtx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	var stoppedBy atomic.Value // os.Signal
	go secondSignalExits(signals, func(sig os.Signal) { stoppedBy.Store(sig); stop(signalStop{sig}) }, exit)

	// `paperpipe CMD -h` (and `paperpipe help CMD`, made that above): the first argument asks
	// for help before anything runs, whatever follows (every command parses its flags first,
	// and -h ends the parse). Not "help" as an argument: `ingest help` ingests a file of that
	// name. `version` still refuses a bad setting: scripts and tests use it as the cheapest
	// check of the settings.
	settingsOnlyShown = len(args) > 1 && slices.Contains([]string{"-h", "-help", "--help"}, args[1])
	warnUnknownSettings(os.Stderr, os.Environ())
	warnOtherAPINames(os.Stderr, os.Environ())
	c := loadConfig()
	// A part of the process that cannot go on (NATS closed the connection, refusing
	// paperpipe's credentials) stops the command as a signal would, with its reason.
	ctx, fail := context.WithCancelCause(sigCtx)
	defer fail(nil)
	c.fail = fail
	// A command closes its NATS connection before it returns: a refusal that ended it is
	// the cause by now (broker.close).
	err := cmd.run(ctx, c, args[1:])
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		switch {
		case err == nil || err == context.Canceled:
			err = cause // a command that said nothing of its own
		case !errors.Is(err, cause):
			err = fmt.Errorf("%w; stopped: %w", err, cause) // what failed, then why
		}
	}
	if werr := stdout.failed(); werr != nil && (err == nil || errors.Is(err, flag.ErrHelp)) {
		err = werr // the results are lost: not a success
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		// Without the ": invalid input" of a cause that wraps paper.ErrInvalid (an unknown
		// --format), which usageErr quotes as text, as errorMessage leaves it out.
		fmt.Fprintf(os.Stderr, "paperpipe %s: %s\n", cmd.name, termSafe(strings.TrimSuffix(err.Error(), ": "+paper.ErrInvalid.Error()), true))
		return 2
	default:
		fmt.Fprintf(os.Stderr, "paperpipe %s: %s%s\n", cmd.name, errorMessage(err), unavailableAdvice(err))
		if sig, ok := stoppedBy.Load().(os.Signal); ok {
			// Stopped with work left (ingest, reprocess, fit, import-embeddings, worker
			// --exit-when-idle): the signal's status, by the signal (see exit).
			return signalExitStatus(sig)
		}
		return 1
	}
}

// unavailableAdvice is what a command's error adds when the database could not be reached or
// went away under the command (paper.ErrUnavailable: a restart, a failover, its session ended),
// and the error says nothing of what to do: the maintenance commands commit their work in steps
// that a run again takes up (remove, import, prune, drop, reindex), and keep what they
// committed. "" otherwise.
func unavailableAdvice(err error) string {
	if !errors.Is(err, paper.ErrUnavailable) || strings.Contains(err.Error(), " again") {
		return ""
	}
	return " (the database could not be reached, or went away under the command — a restart, a failover, its session " +
		"ended; what the command committed before stays: run the same command again once it answers)"
}

// errorMessage is how a command's error is shown: an error wrapping paper.ErrInvalid says its
// reason only, without the sentinel's ": invalid input" at its end (as the web layer does).
// It is made terminal-safe (termSafe, its lines kept): an error may quote a paper's title (an
// ambiguous title fragment lists the candidates) or a server's answer.
func errorMessage(err error) string {
	msg := err.Error()
	if errors.Is(err, paper.ErrInvalid) {
		msg = strings.TrimSuffix(msg, ": "+paper.ErrInvalid.Error())
	}
	return termSafe(msg, true)
}

// stopSignals are the signals that stop a command as Ctrl-C does (a graceful drain, then the
// process ends; a second one ends it at once): SIGINT, SIGTERM and SIGHUP — the terminal a
// `paperpipe worker &` was started from closed (an ssh session that ends), which killed it
// outright, its held messages not handed back and the results it had paid for not saved — but
// not SIGHUP when the process started with it ignored (nohup, a supervisor that ignores it):
// asked for, Go would no longer ignore it, and a hangup would stop what was meant to outlive it.
func stopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

// secondSignalExits ends the process at once on a second SIGINT or SIGTERM, after the first
// one has started a graceful drain. Nothing acknowledged is lost: a message is acknowledged
// only after its results are committed. signals gets every SIGINT and SIGTERM from the
// process's start (room for two), the first included: it goes to stopped, which ends the
// command's context.
//
// A repeat within sameStop of the first is not a second signal but the same stop sent twice:
// timeout(1) sends its signal to the command and then to the command's process group, which
// the command is in, so `timeout 600 paperpipe worker` got two SIGTERMs microseconds apart and,
// about one run in three (when the runtime had not merged them), exited at once, its held
// messages not handed back, instead of draining. A person's second Ctrl-C comes later.
func secondSignalExits(signals <-chan os.Signal, stopped func(os.Signal), exit func(code int)) {
	// The first signal's time is taken before stopped, which cancels the command's context
	// and may take a while on a busy machine: a repeat is measured from the signal, not from
	// the end of its handling.
	sig := <-signals
	first := time.Now()
	stopped(sig)
	for sig := range signals {
		if time.Since(first) < sameStop {
			continue
		}
		fmt.Fprintln(os.Stderr, "paperpipe: second signal, exiting now")
		exit(signalExitStatus(sig))
		return
	}
}

// signalStop is the cause of a command's context that a signal ended: "interrupt signal
// received", as signal.NotifyContext says it, and a context.Canceled.
type signalStop struct{ sig os.Signal }

func (s signalStop) Error() string        { return s.sig.String() + " signal received" }
func (s signalStop) Is(target error) bool { return target == context.Canceled }

// sameStop is how soon after the first signal a repeat is the same stop (secondSignalExits).
const sameStop = 100 * time.Millisecond

// signalExitStatus is the shell's exit status of a process killed by sig: 128 + its number
// (130 for SIGINT, 143 for SIGTERM), what a supervisor expects of a process a signal ended.
func signalExitStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
}

var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "paperpipe turns research-paper abstracts into one-line TL;DRs and embeddings,")
	fmt.Fprintln(w, "and finds related papers by meaning.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: paperpipe COMMAND [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	cmds := commands()
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-17s %-12s %s\n", c.name, c.args, c.short)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags may come before or after arguments; a true/false flag takes its value after =")
	fmt.Fprintln(w, "(--activate=false). Results go to standard output, messages to standard error. Exit status:")
	fmt.Fprintln(w, "0 done, 1 failed, 2 a usage error, 130, 143 or 129 stopped by Ctrl-C, SIGTERM or a hangup with")
	fmt.Fprintln(w, "work left (or at once by a second one).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'paperpipe COMMAND -h' or 'paperpipe help COMMAND' for a command's flags. Configuration")
	fmt.Fprintln(w, "comes from the environment (DATABASE_URL, NATS_URL, OPENAI_BASE_URL, OPENAI_API_KEY,")
	fmt.Fprintln(w, "PAPERPIPE_*); see the README for every variable and its default.")
}

// newFlagSet returns a flag set that prints the command's usage line.
func newFlagSet(name, args, short string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		flags := 0
		fs.VisitAll(func(*flag.Flag) { flags++ })
		usage := "paperpipe " + name
		if flags > 0 {
			usage += " [flags]"
		}
		if args != "" {
			usage += " " + args
		}
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n", usage, short)
		if flags > 0 {
			fmt.Fprintf(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// askedHelp prints fs's help on standard output, as -h does, and returns flag.ErrHelp (exit 0):
// for the word help where a command (or its action) takes its argument (`spaces drop help`,
// `show help`, `remove help`, `batches withheld clear help`). It is the help and not a paper,
// space or job named "help": taken as one, the command opened the database, running its
// migrations, to answer a user who asked how to call it.
func askedHelp(fs *flag.FlagSet) error {
	fs.SetOutput(stdout)
	fs.Usage()
	return flag.ErrHelp
}

// isHelpWord reports whether a command's positional arguments are the word help alone, where
// it takes its argument: see askedHelp.
func isHelpWord(pos []string) bool { return len(pos) == 1 && pos[0] == "help" }

// parseArgs parses flags that may come before, between or after positional arguments
// (`paperpipe related ID -k 10`), and returns the positional ones. An unknown flag or a bad
// value is a usage error (exit 2), like every other mistake in how a command is called; so is
// an empty positional argument (`paperpipe show "$ID"` with $ID unset): no paper, space, file
// or text is named "", and taken as one it failed later as if the name were wrong.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	// What the flag package prints — the usage, after the error for a bad flag — goes to
	// standard output when it is the help asked for (-h, --help: `paperpipe ingest -h | less`,
	// as `paperpipe help` does), else to standard error.
	var msg bytes.Buffer
	fs.SetOutput(&msg)
	given := countFlags(fs)
	defer given.restore()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				stdout.Write(msg.Bytes())
				return nil, err
			}
			os.Stderr.Write(msg.Bytes())
			return nil, usageErr("%v%s", err, flagMeant(fs, err))
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		// `--fill false` sets --fill (a true/false flag takes its value after =) and leaves
		// "false" as an argument: a command taking none ignored it, and did what the user
		// had just said not to (`fit --activate false` activated). Only the words: 1 and 0
		// may be arguments (`batches abandon --force 1`).
		if v := strings.ToLower(rest[0]); v == "true" || v == "false" {
			if i := len(args) - len(rest) - 1; i >= 0 && strings.HasPrefix(args[i], "-") && !strings.Contains(args[i], "=") {
				before := args[i]
				if f := fs.Lookup(strings.TrimLeft(before, "-")); f != nil && isBoolFlag(f) {
					return nil, usageErr("%s %s: write %s=%s (a true/false flag takes its value after =; %s alone is true)",
						before, rest[0], before, v, before)
				}
			}
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	given.restore() // the flags' own Values, for the checks below
	// A flag that takes one value, given twice: the flag package keeps the last, so
	// `remove --ids a.txt --ids b.txt` removed b.txt's papers alone and said nothing of a.txt's.
	for _, name := range given.names {
		if n := given.n[name]; n > 1 {
			return nil, usageErr("%s given twice (%d times): it takes one value, and only the last would be used", dashed(name), n)
		}
	}
	for i, a := range pos {
		if strings.TrimSpace(a) == "" {
			return nil, usageErr("argument %d is empty (a shell variable that is not set?)", i+1)
		}
	}
	// So is an empty flag value (`reprocess --ids "$LIST"` with $LIST unset): taken as the
	// flag left out, reprocess considered the whole archive and bought what it lacked, export
	// wrote every paper, and `list --after ""` started again at the first page. Not where
	// empty has a meaning of its own (up --http "": no web surfaces; worker --metrics "").
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil || emptyMeans[f.Name] {
			return
		}
		if g, ok := f.Value.(flag.Getter); ok {
			if s, ok := g.Get().(string); ok && strings.TrimSpace(s) == "" {
				err = usageErr("%s is empty (a shell variable that is not set?): leave the flag out for its default", dashed(f.Name))
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return pos, nil
}

// dashed is a flag's name as the usage errors write it: -o, -n, -k; --ids.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// repeatable is a flag.Value that takes each value it is given (remove --from, tldrs --keep).
type repeatable interface{ repeatable() }

// repeatFunc is a repeatable flag that calls itself with each value given (flag.Func's, which
// parseArgs would take for a flag of one value).
type repeatFunc func(string) error

func (f repeatFunc) Set(s string) error { return f(s) }
func (f repeatFunc) String() string     { return "" }
func (f repeatFunc) repeatable()        {}

// flagCounts counts how often each flag of a set was given while parseArgs parses.
type flagCounts struct {
	names   []string // the flags counted, in the set's order
	n       map[string]int
	restore func() // gives the flags their own Values and the set its usage back
}

// countFlags has fs count, until its parse ends, the values given to each flag that takes
// one value: each such flag's Value is wrapped in a counter and given back once parseArgs
// returns (its restore, which parseArgs defers) and before the usage prints, so that -h still names each flag's type and default.
func countFlags(fs *flag.FlagSet) *flagCounts {
	c := &flagCounts{n: map[string]int{}}
	orig := map[string]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(repeatable); ok {
			return
		}
		orig[f.Name] = f.Value
		c.names = append(c.names, f.Name)
		f.Value = &countedValue{Value: f.Value, n: func() { c.n[f.Name]++ }}
	})
	restore := func() {
		for name, v := range orig {
			fs.Lookup(name).Value = v
		}
	}
	usage := fs.Usage
	fs.Usage = func() {
		restore()
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	}
	c.restore = func() { restore(); fs.Usage = usage }
	return c
}

// countedValue is a flag.Value that counts its Sets.
type countedValue struct {
	flag.Value
	n func()
}

func (v *countedValue) Set(s string) error { v.n(); return v.Value.Set(s) }

// IsBoolFlag keeps a true/false flag one that takes no value after a space.
func (v *countedValue) IsBoolFlag() bool { return isBoolValue(v.Value) }

// emptyMeans are the flags whose empty value means something (see parseArgs).
var emptyMeans = map[string]bool{"http": true, "metrics": true}

// parseFlags parses the flags of a command that takes no arguments. One given is a usage
// error: ignored, `paperpipe list mixture` listed every paper as if it had searched, and
// `worker --exit-when-idle 4` ran with the default concurrency.
func parseFlags(fs *flag.FlagSet, args []string) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	return noMoreArgs(fs.Name(), pos)
}

// noMoreArgs is the usage error for arguments a command (or an action: "dlq list") does not
// take, or nil when there are none.
func noMoreArgs(what string, extra []string) error {
	if len(extra) > 0 {
		return usageErr("unexpected argument %q: %s takes no arguments, only flags (see `paperpipe %s -h`)", extra[0], what, strings.Fields(what)[0])
	}
	return nil
}

// onlyFor is the usage error for a flag given to an action of cmd that does not read it, or
// nil: allowed are the flags action reads. Accepted, such a flag was ignored: `dlq replay
// --all --json` wrote nothing on standard output for the script that asked for JSON, and
// `spaces --index hnsw` listed the spaces, building nothing.
func onlyFor(fs *flag.FlagSet, action string, allowed ...string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil && !slices.Contains(allowed, f.Name) {
			err = usageErr("--%s is not for `%s` (see `paperpipe %s -h`)", f.Name, action, fs.Name())
		}
	})
	return err
}

// isBoolFlag reports whether f takes no value of its own (`--json`), as flag.Parse sees it.
func isBoolFlag(f *flag.Flag) bool { return isBoolValue(f.Value) }

// isBoolValue reports whether a flag of value v takes no value of its own.
func isBoolValue(v flag.Value) bool {
	b, ok := v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// newLogger returns the process logger: text on stderr at PAPERPIPE_LOG_LEVEL.
func newLogger(c *config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(c.LogLevel))); err != nil {
		fatalf("PAPERPIPE_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// commandMeant is what an unknown command's message adds about the command meant: the one its
// name is a misspelling (an edit distance of at most 2, less than half the name) or the start
// of, or, when it is a flag and a command follows it, the command line with the command first
// (flags come after the command). "" when nothing is close.
func commandMeant(args []string) string {
	names := make([]string, 0, len(commands()))
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if strings.HasPrefix(args[0], "-") {
		for i, a := range args {
			if slices.Contains(names, a) {
				line := append(append([]string{"paperpipe", a}, args[:i]...), args[i+1:]...)
				for j, w := range line {
					line[j] = shellWord(w)
				}
				return ": the command comes first: " + termSafe(strings.Join(line, " "), false)
			}
		}
		return ""
	}
	var prefixed []string
	for _, n := range names {
		if len(args[0]) >= 3 && strings.HasPrefix(n, args[0]) {
			prefixed = append(prefixed, n)
		}
	}
	switch len(prefixed) {
	case 0:
	case 1:
		return fmt.Sprintf(": did you mean %q?", prefixed[0])
	default:
		// `import`: import-tldrs or import-embeddings, not the nearest name, "export".
		quoted := make([]string, len(prefixed))
		for i, n := range prefixed {
			quoted[i] = strconv.Quote(n)
		}
		return fmt.Sprintf(": did you mean %s or %s?", strings.Join(quoted[:len(quoted)-1], ", "), quoted[len(quoted)-1])
	}
	if near, d := nearest(args[0], names); d <= 2 && 2*d <= len(args[0]) {
		return fmt.Sprintf(": did you mean %q?", near)
	}
	return ""
}

// flagMeant is what the error of an unknown flag adds about the flag meant: one of fs's that
// the name is a misspelling of (an edit distance of at most 2, less than half the name), or ""
// when none is close. The error ended the usage printed before it, and said only that the flag
// was not defined (`ingest --foramt jsonl`), where an unknown command names the one meant.
func flagMeant(fs *flag.FlagSet, err error) string {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return ""
	}
	name = strings.TrimLeft(name, "-")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if near, d := nearest(name, names); near != "" && d <= 2 && 2*d <= len(name) {
		return fmt.Sprintf(": did you mean --%s?", near)
	}
	return ""
}

// shellWord is w as a POSIX shell reads it back: as it is when it holds nothing the shell
// would read otherwise, else in single quotes.
func shellWord(w string) string {
	if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}
