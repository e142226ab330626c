package embed

import (
	"fmt"

	"github.com/paperpipe/paperpipe/paper"
)

// FillHint says how to fill space sp with the vectors it lacks: the command line and the web
// give the same advice.
func FillHint(sp paper.Space) string {
	switch {
	case sp.Template != TemplateTitleAbstract:
		return fmt.Sprintf("its input template %q is not one reprocess makes, so import their vectors (`paperpipe import-embeddings`)", sp.Template)
	case IsOfflineModel(sp.Model):
		return fmt.Sprintf("fill it with `paperpipe reprocess --embed-only --embed-model %s`", sp.Model)
	default:
		// The dimensions too: without them reprocess fills the model's default-size space.
		return fmt.Sprintf("fill it with `paperpipe reprocess --embed-only --embed-model %s --embed-dimensions %d`", sp.Model, sp.Dimensions)
	}
}

// NoVectorHint says why paper id has no vector in the active space and what to do, given the
// spaces that hold a vector of its current text (in, by id, as the store's EmbeddedIn returns
// them). When another space holds one (the workers embed with another model, or did before a
// switch), the newest such is named with how to fill the active one: neither a worker nor the
// dead letters would. Only when none does is the paper waiting for a worker, or failed.
func NoVectorHint(id string, active paper.Space, in []paper.Space) string {
	if len(in) == 0 {
		return fmt.Sprintf("paper %s has no embedding in the active space %s yet (is a worker running? or did the paper fail: see `paperpipe dlq list`)", id, active.Name())
	}
	// A bare `reprocess --embed-only` would fill the configured model's space, likely that
	// other one: the hint names the active space's model and dimensions.
	other := in[len(in)-1]
	return fmt.Sprintf("paper %s has no embedding in the active space %s (it has one in space %d, %s, which queries do not use): "+
		"%s; `paperpipe status` says whether the workers are configured for another space", id, active.Name(), other.ID, other.Name(), FillHint(active))
}
