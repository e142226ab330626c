package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

// accentedPapers is a file of three papers: one written with an accent, one with a soft hyphen
// inside a word, one about neither.
func accentedPapers(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "accented.jsonl")
	lines := []string{
		`{"id":"2401.00001","title":"Spectral bounds for Schrödinger operators","abstract":"We bound the spectrum of Schrödinger operators on graphs with a variational argument."}`,
		`{"id":"2401.00002","title":"Co\u00adoperation among learning agents","abstract":"Agents learn co\u00adoperation from sparse rewards in repeated games."}`,
		`{"id":"2401.00003","title":"Kangaroo locomotion","abstract":"Hopping is efficient at speed for large marsupials."}`,
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// searchTop returns the space a semantic search of q used and its first result.
func searchTop(t *testing.T, c *cli, q string) (space, top string) {
	space, top, _ = searchTopScore(t, c, q)
	return space, top
}

// searchTopScore is searchTop with the first result's score.
func searchTopScore(t *testing.T, c *cli, q string) (space, top string, score float64) {
	t.Helper()
	var out struct {
		Space   string `json:"space"`
		Results []struct {
			ID    string  `json:"id"`
			Score float64 `json:"score"`
		} `json:"results"`
	}
	c.json(&out, "search", "--mode", "semantic", "-k", "3", "--", q)
	if len(out.Results) == 0 {
		return out.Space, "", 0
	}
	return out.Space, out.Results[0].ID, out.Results[0].Score
}

// A new archive embeds with the hashed model's second version under "offline" (the default
// without an API): a semantic search typed without the accent or the soft hyphen finds the
// paper written with it. On the first version "Schrodinger" and "Schrödinger" are two terms, a
// search's vector has nothing in common with the paper's, and the soft hyphen splits
// "co\u00adoperation" into "co" and "operation".
func TestOfflineGivesANewArchiveTheSecondHashedModel(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", accentedPapers(t))
	c.ok("worker", "--exit-when-idle")
	for _, tc := range []struct{ q, want string }{
		{"Schrodinger", "arxiv:2401.00001"},
		{"cooperation", "arxiv:2401.00002"},
	} {
		space, top, score := searchTopScore(t, c, tc.q)
		if !strings.HasPrefix(space, embed.OfflineModelV2+"/") || top != tc.want || score < 0.2 {
			t.Errorf("search %q in a new archive: space %s, first result %q at %.3f; want %s's space and %s, above 0.2",
				tc.q, space, top, score, embed.OfflineModelV2, tc.want)
		}
	}
}

// An archive made before the second version (its active space the first hashed model's) keeps
// that model under "offline": a worker embeds new papers into that space, and makes no other,
// and searches are embedded for it; `reprocess --embed-only --embed-model
// paperpipe-offline-hash-v2` then `activate` move it to the second version, which workers and
// searches on "offline" then follow.
func TestOfflineKeepsAnUpgradedArchiveOnItsHashedModel(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	// The archive as the first version left it: "offline" meant paperpipe-offline-hash.
	c.ok("worker", "--exit-when-idle", "--embed-model", embed.OfflineModel)
	c.ok("ingest", accentedPapers(t))
	if r := c.ok("worker", "--exit-when-idle"); strings.Contains(r.stderr, "not active") {
		t.Errorf("the worker on offline warned of a space that is not active:\n%s", r.stderr)
	}
	var spaces []struct {
		Model    string `json:"model"`
		Embedded int    `json:"embedded"`
	}
	c.json(&spaces, "spaces")
	if len(spaces) != 1 || spaces[0].Model != embed.OfflineModel || spaces[0].Embedded != 111 {
		t.Fatalf("spaces after a worker on offline in an upgraded archive: %+v; want the one space of %s with all 111 papers", spaces, embed.OfflineModel)
	}
	if space, _ := searchTop(t, c, "Schrodinger operators"); !strings.HasPrefix(space, embed.OfflineModel+"/") {
		t.Errorf("search in an upgraded archive used space %s, want %s's", space, embed.OfflineModel)
	}

	c.ok("reprocess", "--embed-only", "--embed-model", embed.OfflineModelV2)
	c.ok("activate", embed.OfflineModelV2)
	if space, top := searchTop(t, c, "Schrodinger operators"); !strings.HasPrefix(space, embed.OfflineModelV2+"/") || top != "arxiv:2401.00001" {
		t.Errorf("search after the move to v2: space %s, first %q", space, top)
	}
	late := filepath.Join(t.TempDir(), "late.jsonl")
	if err := os.WriteFile(late, []byte(`{"id":"2401.00004","title":"Nyström sketches","abstract":"We sketch kernels with Nyström landmarks."}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("ingest", late)
	c.ok("worker", "--exit-when-idle")
	if space, top := searchTop(t, c, "Nystrom sketches"); !strings.HasPrefix(space, embed.OfflineModelV2+"/") || top != "arxiv:2401.00004" {
		t.Errorf("a paper that came after the move: search in space %s, first %q; want it embedded into v2's space", space, top)
	}
}

// What "offline" resolves to, by the archive's spaces: the active space's offline model
// whichever it is; with an API model's space active, the first hashed model when the archive
// has its space (what "offline" filled before v2), else v2; v2 in an archive without spaces
// and for the commands that read none.
func TestResolveOfflineFollowsTheArchive(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	check := func(what, want string) {
		t.Helper()
		got, err := resolveOffline(ctx, e.st)
		if err != nil || got != want {
			t.Errorf("%s: offline is %q, %v; want %s", what, got, err, want)
		}
	}
	if got, err := resolveOffline(ctx, nil); err != nil || got != embed.OfflineModelV2 {
		t.Errorf("without a store: %q, %v", got, err)
	}
	check("no space", embed.OfflineModelV2)
	ensure := func(model string, dims int) paper.Space {
		t.Helper()
		sp, err := e.st.EnsureSpace(ctx, paper.Space{Model: model, Dimensions: dims, Template: embed.TemplateTitleAbstract})
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	api := ensure("text-embedding-3-small", 64)
	check("an API model's space active, no offline one", embed.OfflineModelV2)
	v1 := ensure(embed.OfflineModel, 768)
	check("an API model's space active, the first hashed model's beside it", embed.OfflineModel)
	for _, sp := range []paper.Space{v1, ensure(embed.OfflineModelV2, 768), ensure(embed.FittedModelPrefix+"0123456789ab", 768)} {
		if err := e.st.Activate(ctx, sp.ID); err != nil {
			t.Fatal(err)
		}
		check(sp.Model+"'s space active", sp.Model)
	}
	if err := e.st.Activate(ctx, api.ID); err != nil {
		t.Fatal(err)
	}
	check("the API model's space active again", embed.OfflineModel)
}
