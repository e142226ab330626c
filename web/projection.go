package web

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// pca2 projects vectors onto their first two principal components: the directions of largest
// variance, found by subspace iteration on the covariance matrix (topComponents). The result
// is deterministic: each component's sign is chosen so that its largest coordinate is
// positive. All vectors must have the same length.
func pca2(vecs [][]float32) [][2]float64 {
	n := len(vecs)
	out := make([][2]float64, n)
	if n < 2 {
		return out
	}
	d := len(vecs[0])
	mean := make([]float64, d)
	for _, v := range vecs {
		for j, x := range v {
			mean[j] += float64(x)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	centered := make([][]float64, n)
	for i, v := range vecs {
		c := make([]float64, d)
		for j, x := range v {
			c[j] = float64(x) - mean[j]
		}
		centered[i] = c
	}
	comps := topComponents(centered, 2)
	for i, c := range centered {
		out[i] = [2]float64{dot(c, comps[0]), dot(c, comps[1])}
	}
	return out
}

// topComponents returns the unit eigenvectors of the k largest eigenvalues of XᵀX (X's rows are
// rows; zero vectors where X has fewer directions), by subspace iteration with Rayleigh–Ritz
// (Halko, Martinsson and Tropp 2011, §4.5): a block of k+14 vectors from a fixed random start,
// multiplied by XᵀX and orthonormalised until the top k Ritz vectors move by less than 1e-4,
// at most 20 times. Each iteration reads X once for the whole block; a power iteration of
// each component took up to 200 passes over X apiece (2.2–2.6 s for 3,000 papers of 1,536
// dimensions, where this takes 0.5 s on 12 clusters and 1.4 s on 300, keeping 99.7% of the
// variance its two directions find on the flatter spectrum). A component whose coordinate of
// largest magnitude is negative is negated, so the result is deterministic.
func topComponents(rows [][]float64, k int) [][]float64 {
	n, d := len(rows), len(rows[0])
	l := min(k+14, d, n)
	r := rand.New(rand.NewPCG(1, 0x9e3779b97f4a7c15))
	z := make([][]float64, l) // the block: l orthonormal vectors of d
	for c := range z {
		z[c] = make([]float64, d)
		for j := range z[c] {
			z[c][j] = r.NormFloat64()
		}
	}
	z = orthonormalize(z)
	comps := make([][]float64, k)
	w := make([][]float64, l) // X z, by column
	for c := range w {
		w[c] = make([]float64, n)
	}
	for iter := 0; ; iter++ {
		l := len(z)
		for i, row := range rows {
			for c := 0; c < l; c++ {
				w[c][i] = dot(row, z[c])
			}
		}
		// Rayleigh–Ritz: the eigenvectors of zᵀXᵀXz = wᵀw, l×l, give the best k in the block.
		m := make([][]float64, l)
		for a := range m {
			m[a] = make([]float64, l)
			for b := 0; b <= a; b++ {
				m[a][b] = dot(w[a][:n], w[b][:n])
				m[b][a] = m[a][b]
			}
		}
		vals, vecs := symmetricEigen(m)
		order := make([]int, l)
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(vals[b], vals[a]) })
		var change float64 // the Ritz vectors' squared movement
		for c := 0; c < k; c++ {
			v := make([]float64, d)
			if c < l && vals[order[c]] > 1e-12*max(vals[order[0]], 1e-300) {
				for b := 0; b < l; b++ {
					e := vecs[b][order[c]]
					for j, x := range z[b] {
						v[j] += e * x
					}
				}
				normalize(v)
				fixSign(v)
			}
			if comps[c] != nil {
				for j := range v {
					change += (v[j] - comps[c][j]) * (v[j] - comps[c][j])
				}
			}
			comps[c] = v
		}
		if (iter > 0 && change < 1e-8) || iter == 20 {
			return comps
		}
		// The next block: XᵀX z = Xᵀ w, orthonormalised.
		for c := range z {
			clear(z[c])
		}
		for i, row := range rows {
			for c := 0; c < l; c++ {
				if p := w[c][i]; p != 0 {
					zc := z[c]
					for j, x := range row {
						zc[j] += p * x
					}
				}
			}
		}
		z = orthonormalize(z)
		if len(z) == 0 {
			return comps
		}
	}
}

// orthonormalize makes vs orthonormal by modified Gram–Schmidt, in place, dropping a vector
// with nothing left of it (its span is in the others'), and returns those kept.
func orthonormalize(vs [][]float64) [][]float64 {
	kept := vs[:0]
	for _, v := range vs {
		for _, u := range kept {
			orthogonalize(v, u)
		}
		if normalize(v) != 0 {
			kept = append(kept, v)
		}
	}
	return kept
}

// symmetricEigen returns the eigenvalues of the symmetric matrix m and its eigenvectors, as
// the columns of vecs, by cyclic Jacobi rotations. m is overwritten.
func symmetricEigen(m [][]float64) (vals []float64, vecs [][]float64) {
	l := len(m)
	vecs = make([][]float64, l)
	for i := range vecs {
		vecs[i] = make([]float64, l)
		vecs[i][i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		var off, diag float64
		for p := 0; p < l; p++ {
			diag += m[p][p] * m[p][p]
			for q := p + 1; q < l; q++ {
				off += m[p][q] * m[p][q]
			}
		}
		if off <= 1e-30*diag || off == 0 {
			break
		}
		for p := 0; p < l; p++ {
			for q := p + 1; q < l; q++ {
				if m[p][q] == 0 {
					continue
				}
				theta := (m[q][q] - m[p][p]) / (2 * m[p][q])
				t := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for i := 0; i < l; i++ { // columns p and q
					mip, miq := m[i][p], m[i][q]
					m[i][p], m[i][q] = c*mip-s*miq, s*mip+c*miq
				}
				for i := 0; i < l; i++ { // rows p and q
					mpi, mqi := m[p][i], m[q][i]
					m[p][i], m[q][i] = c*mpi-s*mqi, s*mpi+c*mqi
				}
				for i := 0; i < l; i++ {
					vip, viq := vecs[i][p], vecs[i][q]
					vecs[i][p], vecs[i][q] = c*vip-s*viq, s*vip+c*viq
				}
			}
		}
	}
	vals = make([]float64, l)
	for i := range vals {
		vals[i] = m[i][i]
	}
	return vals, vecs
}

// fixSign negates v when its coordinate of largest magnitude is negative.
func fixSign(v []float64) {
	big := 0
	for j := range v {
		if math.Abs(v[j]) > math.Abs(v[big]) {
			big = j
		}
	}
	if v[big] < 0 {
		for j := range v {
			v[j] = -v[j]
		}
	}
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// orthogonalize removes from v its component along the unit vector u (nil: nothing).
func orthogonalize(v, u []float64) {
	if u == nil {
		return
	}
	p := dot(v, u)
	for j := range v {
		v[j] -= p * u[j]
	}
}

// normalize scales v to unit length and returns its former length.
func normalize(v []float64) float64 {
	n := math.Sqrt(dot(v, v))
	if n < 1e-12 {
		return 0
	}
	for j := range v {
		v[j] /= n
	}
	return n
}

// kmeans clusters vectors into k groups by Lloyd's algorithm on Euclidean distance, started by
// k-means++ with a random source seeded by seed, so the same input gives the same clusters.
// It returns each vector's cluster, 0 to k-1.
func kmeans(vecs [][]float32, k int, seed uint64) []int {
	n := len(vecs)
	assign := make([]int, n)
	if n == 0 || k < 2 {
		return assign
	}
	k = min(k, n)
	d := len(vecs[0])
	r := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	dist2 := func(v []float32, c []float64) float64 {
		var s float64
		for j, x := range v {
			t := float64(x) - c[j]
			s += t * t
		}
		return s
	}
	// k-means++: each next centre is drawn with probability proportional to the squared
	// distance to the nearest centre so far.
	centres := make([][]float64, 0, k)
	addCentre := func(v []float32) {
		c := make([]float64, d)
		for j, x := range v {
			c[j] = float64(x)
		}
		centres = append(centres, c)
	}
	addCentre(vecs[r.IntN(n)])
	nearest := make([]float64, n)
	for i, v := range vecs {
		nearest[i] = dist2(v, centres[0])
	}
	for len(centres) < k {
		var total float64
		for _, x := range nearest {
			total += x
		}
		if total == 0 {
			break // fewer distinct points than k
		}
		target, pick := r.Float64()*total, n-1
		for i, x := range nearest {
			if target -= x; target <= 0 {
				pick = i
				break
			}
		}
		addCentre(vecs[pick])
		last := centres[len(centres)-1]
		for i, v := range vecs {
			nearest[i] = min(nearest[i], dist2(v, last))
		}
	}
	k = len(centres)
	counts := make([]int, k)
	for iter := 0; iter < 25; iter++ {
		changed := false
		for i, v := range vecs {
			best, bestD := 0, math.Inf(1)
			for c, centre := range centres {
				if dd := dist2(v, centre); dd < bestD {
					best, bestD = c, dd
				}
			}
			if assign[i] != best || iter == 0 {
				changed = changed || assign[i] != best
				assign[i] = best
			}
		}
		if !changed && iter > 0 {
			break
		}
		for c := range centres {
			clear(centres[c])
			counts[c] = 0
		}
		for i, v := range vecs {
			c := centres[assign[i]]
			for j, x := range v {
				c[j] += float64(x)
			}
			counts[assign[i]]++
		}
		for c, centre := range centres {
			if counts[c] == 0 {
				continue // an empty cluster keeps a zero centre and attracts nothing much
			}
			for j := range centre {
				centre[j] /= float64(counts[c])
			}
		}
	}
	return assign
}

// palette holds colours that stay distinct for colour-blind readers (Tableau 10); the last is
// for "other".
var palette = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"}

const otherColor = "#9e9e9e"

// mapLayout is the archive map, ready to draw.
type mapLayout struct {
	Width, Height int
	Radius        float64
	Points        []mapPointView
	Legend        []legendItem
	// ColoredBy is "category" or "cluster".
	ColoredBy string
}

type mapPointView struct {
	X, Y  string // SVG coordinates, one decimal
	Color string
	URL   string
	Title string
	Label string // category or cluster name
}

type legendItem struct {
	Color, Label string
	Papers       int
}

// Map drawing constants.
const (
	mapWidth, mapHeight, mapMargin = 960, 640, 16
	maxLegendColours               = 9
)

// layoutMap projects points to 2-D and colours them by first category when most points have
// one, and by k-means cluster otherwise: a few categorised papers among many without would
// leave one colour, "uncategorised", for nearly every dot.
func layoutMap(points []MapPoint) mapLayout {
	lay := mapLayout{Width: mapWidth, Height: mapHeight, Radius: 5}
	switch n := len(points); {
	case n > 2000:
		lay.Radius = 3
	case n > 500:
		lay.Radius = 4
	}
	if len(points) == 0 {
		return lay
	}
	vecs := make([][]float32, len(points))
	for i, p := range points {
		vecs[i] = p.Vector
	}
	xy := pca2(vecs)

	labels := make([]string, len(points))
	categorised := 0
	for i, p := range points {
		if len(p.Categories) > 0 {
			labels[i] = p.Categories[0]
			categorised++
		}
	}
	if 2*categorised > len(points) {
		lay.ColoredBy = "category"
		for i := range labels {
			if labels[i] == "" {
				labels[i] = "uncategorised"
			}
		}
	} else {
		lay.ColoredBy = "cluster"
		k := max(2, min(8, int(math.Round(math.Sqrt(float64(len(points))/4)))))
		assign := kmeans(vecs, k, 1)
		names := clusterNames(points, assign)
		for i, c := range assign {
			labels[i] = names[c]
		}
	}

	// The most common labels get colours, in order of size; the rest share "other".
	count := map[string]int{}
	for _, l := range labels {
		count[l]++
	}
	order := make([]string, 0, len(count))
	for l := range count {
		order = append(order, l)
	}
	slices.SortFunc(order, func(a, b string) int {
		return cmp.Or(cmp.Compare(count[b], count[a]), cmp.Compare(a, b))
	})
	colour := map[string]string{}
	others := 0
	for i, l := range order {
		if i < maxLegendColours && (i < maxLegendColours-1 || len(order) == maxLegendColours) {
			colour[l] = palette[i]
			lay.Legend = append(lay.Legend, legendItem{Color: palette[i], Label: l, Papers: count[l]})
		} else {
			colour[l] = otherColor
			others += count[l]
		}
	}
	if others > 0 {
		lay.Legend = append(lay.Legend, legendItem{Color: otherColor, Label: "other", Papers: others})
	}

	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range xy {
		minX, maxX = min(minX, p[0]), max(maxX, p[0])
		minY, maxY = min(minY, p[1]), max(maxY, p[1])
	}
	scale := func(v, lo, hi float64, size int) string {
		span := float64(size - 2*mapMargin)
		pos := float64(size) / 2
		if hi-lo > 1e-12 {
			pos = mapMargin + (v-lo)/(hi-lo)*span
		}
		return strconv.FormatFloat(pos, 'f', 1, 64)
	}
	lay.Points = make([]mapPointView, len(points))
	for i, p := range points {
		lay.Points[i] = mapPointView{
			X:     scale(xy[i][0], minX, maxX, mapWidth),
			Y:     scale(-xy[i][1], -maxY, -minY, mapHeight),
			Color: colour[labels[i]],
			URL:   paperPath(p.ID),
			Title: p.Title,
			Label: labels[i],
		}
	}
	return lay
}

// clusterNames names each cluster by the two title words most characteristic of it: frequent
// in the cluster's titles and rare in the others'.
func clusterNames(points []MapPoint, assign []int) map[int]string {
	k := 0
	for _, c := range assign {
		k = max(k, c+1)
	}
	size := make([]int, k)
	inCluster := make([]map[string]int, k)
	overall := map[string]int{}
	for c := range inCluster {
		inCluster[c] = map[string]int{}
	}
	for i, p := range points {
		c := assign[i]
		size[c]++
		seen := map[string]bool{}
		for _, w := range titleWords(p.Title) {
			if !seen[w] {
				seen[w] = true
				inCluster[c][w]++
				overall[w]++
			}
		}
	}
	names := make(map[int]string, k)
	for c := range k {
		type scored struct {
			w string
			s float64
		}
		var ws []scored
		for w, df := range inCluster[c] {
			if df < 2 && size[c] > 2 {
				continue
			}
			rest := float64(overall[w]-df) / float64(max(1, len(points)-size[c]))
			ws = append(ws, scored{w, float64(df)/float64(size[c]) - rest})
		}
		slices.SortFunc(ws, func(a, b scored) int { return cmp.Or(cmp.Compare(b.s, a.s), cmp.Compare(a.w, b.w)) })
		var top []string
		for _, s := range ws[:min(2, len(ws))] {
			top = append(top, s.w)
		}
		if len(top) == 0 {
			names[c] = "cluster " + strconv.Itoa(c+1)
		} else {
			names[c] = strings.Join(top, ", ")
		}
	}
	// Two clusters with the same name would share a colour: number them.
	seen := map[string]int{}
	for c := range k {
		seen[names[c]]++
		if seen[names[c]] > 1 {
			names[c] += " (" + strconv.Itoa(seen[names[c]]) + ")"
		}
	}
	return names
}

// titleWords returns the lower-cased words of a title that can name a topic: letters only,
// four or more of them, not common English or research-paper words.
func titleWords(title string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(strings.ToLower(title), func(r rune) bool { return !unicode.IsLetter(r) && r != '-' }) {
		f = strings.Trim(f, "-")
		if len([]rune(f)) < 4 || titleStopWords[f] {
			continue
		}
		out = append(out, f)
	}
	return out
}

var titleStopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`about above after again against also among and any are because been before
		being below between both but can could does doing down during each few for from further have having here
		into itself just more most must need only other over same should some such than that their them then
		there these they this those through towards under until upon very what when where which while with
		within without would your via using based towards toward beyond across large language model models
		learning neural network networks deep approach approaches method methods towards study analysis new
		paper results data task tasks efficient effective improving improved better simple scalable`) {
		m[w] = true
	}
	return m
}()

// mapCache keeps the last map layout, keyed by a hash of the points it was made from, so
// that redrawing an unchanged archive costs a database read and a hash, not a projection.
type mapCache struct {
	mu     sync.Mutex
	key    uint64
	layout *mapLayout
	// building is the layout being computed; nil when none is.
	building *mapBuild
	// compute makes a layout: layoutMap, unless a test makes it slow.
	compute func([]MapPoint) mapLayout
}

// mapBuild is one layout being computed, for the points whose hash is key; done is closed
// when lay or err is set. kept, when not nil, is given the layout once it is computed, also
// when the request that started it has gone.
type mapBuild struct {
	key  uint64
	done chan struct{}
	lay  mapLayout
	err  error
	kept func(mapLayout)
}

// idle waits until no layout is being computed, or for ctx.
func (c *mapCache) idle(ctx context.Context) error {
	c.mu.Lock()
	b := c.building
	c.mu.Unlock()
	if b == nil {
		return nil
	}
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// get returns the layout of points, computing it when the points changed. One layout is
// computed at a time (for 3,000 points of 1,536 dimensions it takes seconds), outside the
// lock and outside the request: every request, the one that started it too, waits for it or
// for its ctx, and a layout whose request ran out of time is kept for the next one (a page
// bounded by PageTimeout answered long after it, and every reader drew it again). kept, when
// not nil, is given the layout this call starts once it is computed, whether or not the call
// is still waiting for it.
func (c *mapCache) get(ctx context.Context, points []MapPoint, kept func(mapLayout)) (mapLayout, error) {
	h := fnv.New64a()
	var buf [4]byte
	for _, p := range points {
		h.Write([]byte(p.ID))
		h.Write([]byte{0})
		h.Write([]byte(p.Title))
		h.Write([]byte{0})
		h.Write([]byte(strings.Join(p.Categories, "\x01")))
		h.Write([]byte{0})
		for _, x := range p.Vector {
			b := math.Float32bits(x)
			buf[0], buf[1], buf[2], buf[3] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
			h.Write(buf[:])
		}
	}
	key := h.Sum64()
	for {
		c.mu.Lock()
		if c.layout != nil && c.key == key {
			lay := *c.layout
			c.mu.Unlock()
			return lay, nil
		}
		b := c.building
		if b == nil {
			b = &mapBuild{key: key, done: make(chan struct{}), kept: kept}
			c.building = b
			go c.build(b, points)
		}
		c.mu.Unlock()
		select {
		case <-b.done:
			if b.key == key {
				return b.lay, b.err
			}
			// That was another set of points': look again.
		case <-ctx.Done():
			return mapLayout{}, ctx.Err()
		}
	}
}

// build computes b's layout and keeps it. A panic in the computation is b's error, given to
// the requests waiting for it; the next request computes again.
func (c *mapCache) build(b *mapBuild, points []MapPoint) {
	defer func() {
		if p := recover(); p != nil {
			b.err = fmt.Errorf("lay out the map of %d papers: %v", len(points), p)
		}
		c.mu.Lock()
		c.building = nil
		if b.err == nil {
			// A copy: a pointer into b would keep b, and through b.kept the sample of
			// vectors the map was drawn from (up to MapMaxPoints of them, 31 MB at 1,536
			// dimensions), for as long as the layout is cached.
			lay := b.lay
			c.key, c.layout = b.key, &lay
		}
		c.mu.Unlock()
		if b.err == nil && b.kept != nil {
			b.kept(b.lay)
		}
		close(b.done)
	}()
	compute := c.compute
	if compute == nil {
		compute = layoutMap
	}
	b.lay = compute(points)
}
