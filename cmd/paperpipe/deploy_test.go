package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/web"
)

// TestK8sServerRequiresATokenFromASecret: deploy/k8s's server listens on the pod's IP, where
// anything that reaches the Service could queue papers the workers pay for: the manifest must
// give it PAPERPIPE_API_TOKEN, from a Secret, not optional (a missing Secret keeps the pod
// from starting instead of leaving writes open).
func TestK8sServerRequiresATokenFromASecret(t *testing.T) {
	t.Parallel()
	type envVar struct {
		Name      string
		Value     *string
		ValueFrom struct {
			SecretKeyRef *struct {
				Name, Key string
				Optional  *bool
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	type manifest struct {
		Kind     string
		Metadata struct{ Name string }
		Spec     struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name string
						Args []string
						Env  []envVar
					}
				}
			}
		}
	}
	data, err := os.ReadFile("../../deploy/k8s/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	servers := 0
	for {
		var m manifest
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("serve.yaml: %v", err)
		}
		for _, c := range m.Spec.Template.Spec.Containers {
			if !slices.Contains(c.Args, "serve") {
				continue
			}
			servers++
			i := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == "PAPERPIPE_API_TOKEN" })
			if i < 0 {
				t.Errorf("%s %s, container %s (%s): no PAPERPIPE_API_TOKEN", m.Kind, m.Metadata.Name, c.Name, strings.Join(c.Args, " "))
				continue
			}
			ref := c.Env[i].ValueFrom.SecretKeyRef
			if c.Env[i].Value != nil || ref == nil || ref.Name == "" || ref.Key == "" || (ref.Optional != nil && *ref.Optional) {
				t.Errorf("%s %s: PAPERPIPE_API_TOKEN is %+v, want a required secretKeyRef", m.Kind, m.Metadata.Name, c.Env[i])
			}
		}
	}
	if servers == 0 {
		t.Error("serve.yaml runs no `paperpipe serve`")
	}
}

// k8sProbe is a container probe of the manifests, as the tests read it.
type k8sProbe struct {
	HTTPGet struct {
		Path string
		Port string
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

// k8sManifest is a document of deploy/k8s (a Deployment, the ConfigMap), as the tests read it.
type k8sManifest struct {
	Kind string
	Data map[string]string
	Spec struct {
		Template struct {
			Metadata struct{ Annotations map[string]string }
			Spec     struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer
				Volumes                       []k8sVolume
			}
		}
	}
}

// k8sContainer is a container of a manifest's pod, as the tests read it.
type k8sContainer struct {
	Name            string
	Args            []string
	Env             []k8sEnvVar
	Ports           []k8sPort
	Resources       struct{ Limits map[string]string }
	SecurityContext struct {
		ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts   []k8sMount `yaml:"volumeMounts"`
	ReadinessProbe *k8sProbe  `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe  `yaml:"livenessProbe"`
	StartupProbe   *k8sProbe  `yaml:"startupProbe"`
}

type (
	k8sEnvVar struct{ Name, Value string }
	k8sPort   struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	k8sMount struct {
		Name      string
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	k8sVolume struct {
		Name     string
		EmptyDir *struct{} `yaml:"emptyDir"`
	}
)

// TestK8sWorkerIsScrapedProbedAndGivenTimeToStop: the pipeline's counters exist only in the
// workers' processes, so worker.yaml must run `worker --metrics` on the port its probes and its
// prometheus.io annotations name; its grace period must cover a shutdown in a database outage
// (drain 30 s, paid saves ~2.6 min, usage flush ~50 s); serve.yaml keeps serving, unready, for
// a few seconds after SIGTERM; the ConfigMap bounds each pod's database pool.
func TestK8sWorkerIsScrapedProbedAndGivenTimeToStop(t *testing.T) {
	t.Parallel()
	read := func(name string) k8sManifest {
		t.Helper()
		var m k8sManifest
		decodeDeployFile(t, "k8s/"+name, &m)
		return m
	}
	w := read("worker.yaml")
	if g := w.Spec.Template.Spec.TerminationGracePeriodSeconds; g < 300 {
		t.Errorf("worker.yaml: terminationGracePeriodSeconds %d, want at least 300", g)
	}
	c := w.Spec.Template.Spec.Containers[0]
	i := slices.Index(c.Args, "--metrics")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("worker.yaml runs %v, without --metrics", c.Args)
	}
	_, port, _ := strings.Cut(c.Args[i+1], ":")
	if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port {
		t.Errorf("worker.yaml: ports %+v, want the --metrics port %s", c.Ports, port)
	}
	if a := w.Spec.Template.Metadata.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != port || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("worker.yaml: annotations %v, want the scrape of /metrics on %s", a, port)
	}
	for p, want := range map[*k8sProbe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
		if p == nil || p.HTTPGet.Path != want || len(c.Ports) == 0 || p.HTTPGet.Port != c.Ports[0].Name {
			t.Errorf("worker.yaml: probe %+v, want %s on the metrics port", p, want)
		}
	}
	s := read("serve.yaml").Spec.Template.Spec.Containers[0]
	// /readyz gives each check up to 3 s (web's readyzTimeout): a probe's default 1 s timeout
	// marks a slow but healthy pod unready.
	for name, p := range map[string]*k8sProbe{"worker.yaml": c.ReadinessProbe, "serve.yaml": s.ReadinessProbe} {
		if p == nil || p.TimeoutSeconds <= 3 {
			t.Errorf("%s: readiness probe %+v, want a timeout above /readyz's 3 s checks", name, p)
		}
	}
	if !slices.ContainsFunc(s.Env, func(e k8sEnvVar) bool {
		return e.Name == "PAPERPIPE_SHUTDOWN_DELAY" && e.Value != ""
	}) {
		t.Error("serve.yaml sets no PAPERPIPE_SHUTDOWN_DELAY: a rolling update refuses the requests routed to the stopping pod")
	}
	if u := read("configmap.yaml").Data["DATABASE_URL"]; !strings.Contains(u, "pool_max_conns=") {
		t.Errorf("configmap.yaml: DATABASE_URL %s sets no pool_max_conns", u)
	}
}

// TestK8sPodsAreGivenTheMigrationLockWaitToStart: a pod answers its probes only once it has
// started, after the migrations it applies at start, and in an upgrade those wait for another
// pod's (the migration lock) and run as long as they take on the archive. With a liveness probe
// alone the kubelet kills the pod about half a minute in — mid-migration, rolled back, and
// again at each restart — so each Deployment needs a startup probe on the same endpoint that
// allows at least the migration lock's wait.
func TestK8sPodsAreGivenTheMigrationLockWaitToStart(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"worker.yaml", "serve.yaml"} {
		var m k8sManifest
		decodeDeployFile(t, "k8s/"+name, &m)
		if m.Kind != "Deployment" {
			t.Fatalf("%s: %s, want the Deployment first", name, m.Kind)
		}
		for _, c := range m.Spec.Template.Spec.Containers {
			l, s := c.LivenessProbe, c.StartupProbe
			if l == nil {
				continue
			}
			if s == nil {
				t.Errorf("%s: container %s has a liveness probe and no startup probe: a pod migrating at start is killed", name, c.Name)
				continue
			}
			if s.HTTPGet != l.HTTPGet {
				t.Errorf("%s: container %s: startup probe %+v, want the liveness probe's %+v", name, c.Name, s.HTTPGet, l.HTTPGet)
			}
			// Kubernetes' defaults: a period of 10 s, three failures.
			period, failures := cmp.Or(s.PeriodSeconds, 10), cmp.Or(s.FailureThreshold, 3)
			if allowed := time.Duration(s.InitialDelaySeconds+period*failures) * time.Second; allowed <= store.MigrationLockWait {
				t.Errorf("%s: container %s: the startup probe allows %v, want more than the migration lock's wait of %v",
					name, c.Name, allowed, store.MigrationLockWait)
			}
		}
	}
}

// TestComposeWorkerIsGivenTheK8sWorkersTimeToStop: Docker Compose gives a container 10 s after
// SIGTERM (`docker compose stop`, `down`, the `up` of a rebuild), then kills it. A paperpipe
// worker stopping drains its consumer — its API calls in flight finish and are saved, in a
// database outage for minutes — so compose.yaml's worker was killed mid-drain, the results it
// had paid for not saved and bought again on redelivery. Each paperpipe service of compose.yaml
// that runs workers must have the stop_grace_period worker.yaml gives its pods.
func TestComposeWorkerIsGivenTheK8sWorkersTimeToStop(t *testing.T) {
	t.Parallel()
	var k8s k8sManifest
	var compose struct {
		Services map[string]struct {
			Build *struct {
				Dockerfile string
			}
			Command         []string
			StopGracePeriod string `yaml:"stop_grace_period"`
		}
	}
	decodeDeployFile(t, "k8s/worker.yaml", &k8s)
	decodeDeployFile(t, "compose.yaml", &compose)
	want := time.Duration(k8s.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	workers := 0
	for name, s := range compose.Services {
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" || len(s.Command) == 0 || (s.Command[0] != "worker" && s.Command[0] != "up") {
			continue
		}
		workers++
		// Compose's durations are Go's (1m30s), without the days and weeks it never needs here.
		got, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil || got < want {
			t.Errorf("compose.yaml: service %s runs `paperpipe %s` with stop_grace_period %q, want at least worker.yaml's %v "+
				"(Compose's default, 10 s, kills a draining worker)", name, strings.Join(s.Command, " "), s.StopGracePeriod, want)
		}
	}
	if workers == 0 || want == 0 {
		t.Errorf("compose.yaml runs %d paperpipe workers and worker.yaml's grace period is %v: the test reads neither", workers, want)
	}
}

// TestK8sReadOnlyPodsHaveAWritableTmp: the manifests make the root file system read-only, and
// /tmp with it, where the Batch API's input and result files are written (batch.Config.TempDir
// defaults to os.TempDir): `kubectl exec … paperpipe reprocess --batch-api` in a pod failed
// each job at its input file, its papers held out of other work. Each container with a
// read-only root must have an emptyDir on /tmp, and no TMPDIR pointing elsewhere.
func TestK8sReadOnlyPodsHaveAWritableTmp(t *testing.T) {
	t.Parallel()
	readOnly := 0
	for _, name := range []string{"worker.yaml", "serve.yaml"} {
		var m k8sManifest
		decodeDeployFile(t, "k8s/"+name, &m)
		if m.Kind != "Deployment" {
			t.Fatalf("%s: %s, want the Deployment first", name, m.Kind)
		}
		pod := m.Spec.Template.Spec
		for _, c := range pod.Containers {
			if !c.SecurityContext.ReadOnlyRootFilesystem {
				continue
			}
			readOnly++
			if slices.ContainsFunc(c.Env, func(e k8sEnvVar) bool { return e.Name == "TMPDIR" }) {
				t.Errorf("%s: container %s sets TMPDIR: the test checks /tmp", name, c.Name)
			}
			i := slices.IndexFunc(c.VolumeMounts, func(v k8sMount) bool { return v.MountPath == "/tmp" && !v.ReadOnly })
			if i < 0 {
				t.Errorf("%s: container %s has a read-only root file system and nothing writable on /tmp (reprocess --batch-api writes there)", name, c.Name)
				continue
			}
			if !slices.ContainsFunc(pod.Volumes, func(v k8sVolume) bool { return v.Name == c.VolumeMounts[i].Name && v.EmptyDir != nil }) {
				t.Errorf("%s: container %s mounts %s on /tmp, which is not an emptyDir of the pod", name, c.Name, c.VolumeMounts[i].Name)
			}
		}
	}
	if readOnly == 0 {
		t.Error("no container of worker.yaml or serve.yaml has a read-only root file system: the test reads nothing")
	}
}

// TestDockerfileExposesThePortsOfTheManifests: the image documents the ports its processes
// serve (EXPOSE, which `docker run -P` publishes); it named serve's 8080 and said workers listen
// on nothing, while deploy/k8s's workers serve their probes and /metrics on 9090. Each
// containerPort of the manifests must be exposed by deploy/Dockerfile.
func TestDockerfileExposesThePortsOfTheManifests(t *testing.T) {
	t.Parallel()
	dockerfile, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var exposed []string
	for line := range strings.Lines(string(dockerfile)) {
		if f := strings.Fields(line); len(f) > 1 && strings.EqualFold(f[0], "EXPOSE") {
			for _, p := range f[1:] {
				exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
			}
		}
	}
	ports := 0
	for _, name := range []string{"worker.yaml", "serve.yaml"} {
		var m k8sManifest
		decodeDeployFile(t, "k8s/"+name, &m)
		for _, c := range m.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				ports++
				if !slices.Contains(exposed, strconv.Itoa(p.ContainerPort)) {
					t.Errorf("%s: container %s serves port %d, which deploy/Dockerfile does not expose (it exposes %q)", name, c.Name, p.ContainerPort, exposed)
				}
			}
		}
	}
	if ports == 0 {
		t.Error("the manifests declare no container port: the test reads nothing")
	}
}

// deployEnvNames are the variables the deploy files may give paperpipe's processes besides its
// settings: the four it reads under their usual names, PGPASSWORD, which pgx reads, and
// GOMEMLIMIT, the Go runtime's.
var deployEnvNames = []string{"DATABASE_URL", "NATS_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "PGPASSWORD", "GOMEMLIMIT"}

// TestDeployFilesNameOnlySettingsPaperpipeReads: a setting misspelled or renamed in a manifest
// (PAPERPIPE_SHUTDOWN_DELAY, PAPERPIPE_NATS_REPLICAS) is ignored by the process, which warns
// once in a log nobody reads at deploy time and runs on the default. Every PAPERPIPE_ name in
// deploy/ — the manifests' env and ConfigMap keys, those their comments tell one to set, the
// READMEs' — must be one paperpipe reads (settings) or one of the scripts' (otherTools), and
// every variable the manifests and compose.yaml give a paperpipe container one it reads.
func TestDeployFilesNameOnlySettingsPaperpipeReads(t *testing.T) {
	t.Parallel()
	known := func(name string) bool {
		return slices.Contains(settings, name) || slices.Contains(deployEnvNames, name)
	}
	files, err := filepath.Glob("../../deploy/k8s/*")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../deploy/compose.yaml", "../../deploy/Dockerfile", "../../deploy/README.md")
	mentioned := regexp.MustCompile(`\bPAPERPIPE_[A-Z0-9_]+\b`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range mentioned.FindAllString(string(data), -1) {
			if !known(name) && !slices.Contains(otherTools, name) {
				t.Errorf("%s names %s, which is not a setting of paperpipe (settings.go) nor of its scripts", f, name)
			}
		}
	}

	// What the manifests and compose.yaml give the containers running paperpipe.
	type env struct{ Name string }
	type k8sDoc struct {
		Kind string
		Data map[string]string
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name  string
						Image string
						Env   []env
					}
				}
			}
		}
	}
	given := 0
	for _, name := range []string{"configmap.yaml", "worker.yaml", "serve.yaml"} {
		data, err := os.ReadFile("../../deploy/k8s/" + name)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var m k8sDoc
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for key := range m.Data { // the ConfigMap, which both Deployments take whole (envFrom)
				given++
				if !known(key) {
					t.Errorf("%s: ConfigMap key %s is not a variable paperpipe reads", name, key)
				}
			}
			for _, c := range m.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					given++
					if !known(e.Name) {
						t.Errorf("%s: container %s is given %s, which paperpipe does not read", name, c.Name, e.Name)
					}
				}
			}
		}
	}
	var compose struct {
		Services map[string]struct {
			Build       *struct{ Dockerfile string }
			Environment map[string]string
		}
	}
	decodeDeployFile(t, "compose.yaml", &compose)
	for svc, s := range compose.Services {
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			continue // postgres, nats
		}
		for name := range s.Environment {
			given++
			if !known(name) {
				t.Errorf("compose.yaml: service %s is given %s, which paperpipe does not read", svc, name)
			}
		}
	}
	if given == 0 {
		t.Error("the deploy files give paperpipe no variable: the test reads nothing")
	}
}

// TestK8sProbesAndScrapesAskForWhatTheServersServe: the kubelet's probes and Prometheus (by
// the prometheus.io annotations) ask the paths the manifests name. A path that the server does
// not serve (a route renamed, a typo in a manifest) answers 404: a readiness probe that never
// passes keeps the pod out of its Service, a liveness or startup probe restarts it forever, a
// scrape finds no metrics. Each path must answer 200 from paperpipe's server, asked as the
// kubelet asks: on the pod's IP address, without a token. And a dependency down (the database
// in an outage) must fail the readiness probe only: a liveness or startup probe that failed
// with it would restart every pod, healthy ones that ride the outage out, paused, included.
func TestK8sProbesAndScrapesAskForWhatTheServersServe(t *testing.T) {
	t.Parallel()
	// serve and worker --metrics serve the probes and /metrics alike (web.New, web.NewProbes):
	// NewProbes needs no store.
	healthy, err := web.NewProbes(web.Config{APIToken: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	down, err := web.NewProbes(web.Config{APIToken: "secret", Checks: []web.Check{{Name: "database", Check: func(context.Context) error {
		return errors.New("connection refused")
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(srv *web.Server, path string) int {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://10.1.2.3:8080"+path, nil))
		return rec.Code
	}
	asked := 0
	ask := func(file, what, path string, outage int) {
		asked++
		if path == "" {
			t.Errorf("%s: %s names no path", file, what)
			return
		}
		if code := get(healthy, path); code != http.StatusOK {
			t.Errorf("%s: %s asks for %s, which answers %d", file, what, path, code)
		}
		if code := get(down, path); code != outage {
			t.Errorf("%s: %s asks for %s, which answers %d while the database is down, want %d", file, what, path, code, outage)
		}
	}
	for _, name := range []string{"worker.yaml", "serve.yaml"} {
		var m k8sManifest
		decodeDeployFile(t, "k8s/"+name, &m)
		if a := m.Spec.Template.Metadata.Annotations; a["prometheus.io/scrape"] == "true" {
			ask(name, "the prometheus.io annotations' scrape", a["prometheus.io/path"], http.StatusOK)
		}
		for _, c := range m.Spec.Template.Spec.Containers {
			for _, p := range []struct {
				what   string
				probe  *k8sProbe
				outage int
			}{
				{"readiness", c.ReadinessProbe, http.StatusServiceUnavailable},
				{"liveness", c.LivenessProbe, http.StatusOK},
				{"startup", c.StartupProbe, http.StatusOK},
			} {
				if p.probe != nil {
					ask(name, "container "+c.Name+"'s "+p.what+" probe", p.probe.HTTPGet.Path, p.outage)
				}
			}
		}
	}
	if asked == 0 {
		t.Error("the manifests name no probe and no scrape: the test asks nothing")
	}
}

// TestK8sMemoryLimitsAreKnownToGo: a container's memory limit is the kernel's, which Go's
// garbage collector does not know: it lets the heap grow to twice the live data before
// collecting, and the kernel kills the process at the limit. serve's 512Mi was passed by a
// burst of posts (574 MB for 32 posts of 4 MiB at once; 425 MB with GOMEMLIMIT=400MiB).
// Each container with a memory limit must set GOMEMLIMIT below it, with room for what is
// not heap (goroutine stacks, the runtime's own): at most 90% of it, and at least half.
func TestK8sMemoryLimitsAreKnownToGo(t *testing.T) {
	t.Parallel()
	// size parses the forms the manifests use: a whole number of Mi or Gi (Kubernetes), of
	// MiB or GiB (Go's GOMEMLIMIT).
	size := func(s string, units map[string]int64) (int64, bool) {
		for suffix, unit := range units {
			if n, err := strconv.ParseInt(strings.TrimSuffix(s, suffix), 10, 64); strings.HasSuffix(s, suffix) && err == nil && n > 0 {
				return n * unit, true
			}
		}
		return 0, false
	}
	limited := 0
	for _, name := range []string{"worker.yaml", "serve.yaml"} {
		var m k8sManifest
		decodeDeployFile(t, "k8s/"+name, &m)
		for _, c := range m.Spec.Template.Spec.Containers {
			raw, ok := c.Resources.Limits["memory"]
			if !ok {
				continue
			}
			limited++
			limit, ok := size(raw, map[string]int64{"Mi": 1 << 20, "Gi": 1 << 30})
			if !ok {
				t.Errorf("%s: container %s: memory limit %q, want a whole number of Mi or Gi (the test reads no other)", name, c.Name, raw)
				continue
			}
			i := slices.IndexFunc(c.Env, func(e k8sEnvVar) bool { return e.Name == "GOMEMLIMIT" })
			if i < 0 {
				t.Errorf("%s: container %s has a memory limit of %s and no GOMEMLIMIT: Go's collector does not know it", name, c.Name, raw)
				continue
			}
			soft, ok := size(c.Env[i].Value, map[string]int64{"MiB": 1 << 20, "GiB": 1 << 30})
			if !ok || soft > limit*9/10 || soft < limit/2 {
				t.Errorf("%s: container %s: GOMEMLIMIT %q with a memory limit of %s, want half to 90%% of it", name, c.Name, c.Env[i].Value, raw)
			}
		}
	}
	if limited == 0 {
		t.Error("no container of worker.yaml or serve.yaml has a memory limit: the test reads nothing")
	}
}

// decodeDeployFile decodes the first YAML document of deploy/path (a k8s manifest's first is
// its Deployment) into v, ending the test when it cannot.
func decodeDeployFile(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile("../../deploy/" + path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
