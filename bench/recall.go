package bench

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"sync"
)

// Normalize scales v to unit length in place (a zero vector stays zero) and returns it.
func Normalize(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return v
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
	return v
}

// dot is the inner product of two vectors of the same length, unrolled by eight.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
		s4 += a[i+4] * b[i+4]
		s5 += a[i+5] * b[i+5]
		s6 += a[i+6] * b[i+6]
		s7 += a[i+7] * b[i+7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

// Query is one exact-search question: a unit vector, and the index of a stored vector to leave
// out of the answer (the paper itself, for related papers), or -1.
type Query struct {
	Vector  []float32
	Exclude int
}

// Truth is one query's exact answer: the indexes of its k nearest vectors, nearest first, and
// the similarity of the k-th.
type Truth struct {
	IDs []int
	Kth float32
}

// ExactKNN returns, for each query, the k unit vectors of data nearest by cosine similarity
// (largest inner product first; ties by lower index), computed by brute force on all cores. data
// and the queries must be normalised (see Normalize).
func ExactKNN(data [][]float32, queries []Query, k int) []Truth {
	out := make([]Truth, len(queries))
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for qi := range work {
				out[qi] = topK(data, queries[qi], k)
			}
		}()
	}
	for i := range queries {
		work <- i
	}
	close(work)
	wg.Wait()
	return out
}

type scored struct {
	i int
	s float32
}

// better orders candidates: higher score first, then lower index.
func better(a, b scored) int {
	if c := cmp.Compare(b.s, a.s); c != 0 {
		return c
	}
	return cmp.Compare(a.i, b.i)
}

func topK(data [][]float32, q Query, k int) Truth {
	best := make([]scored, 0, k+1)
	for i, v := range data {
		if i == q.Exclude {
			continue
		}
		c := scored{i, dot(q.Vector, v)}
		if len(best) == k && better(c, best[k-1]) >= 0 {
			continue
		}
		at, _ := slices.BinarySearchFunc(best, c, better)
		best = slices.Insert(best, at, c)
		if len(best) > k {
			best = best[:k]
		}
	}
	t := Truth{IDs: make([]int, len(best))}
	for i, b := range best {
		t.IDs[i] = b.i
	}
	if len(best) > 0 {
		t.Kth = best[len(best)-1].s
	}
	return t
}

// TieRecall is recall that counts ties as found: the share of the k exact neighbours an
// approximate search matched. Among vectors at the k-th similarity to the query (the same text
// twice, or two texts one embedding cannot tell apart) the exact answer keeps the lowest indexes
// and a search any of them, equally right, where Recall counts the others as misses: here a
// returned vector more similar than the exact k-th is found, and returned vectors exactly as
// similar fill the exact answer's places at that similarity. A returned index counts once, and
// not at all when it is the query's excluded one or out of range. got holds indexes into data;
// data and q are what ExactKNN was given (the same inner products, so a tie is equality). It is
// 1 when the truth is empty.
func TieRecall(got []int, t Truth, data [][]float32, q Query) float64 {
	k := len(t.IDs)
	if k == 0 {
		return 1
	}
	nearer := 0 // places of the exact answer more similar than the k-th
	for _, i := range t.IDs {
		if dot(q.Vector, data[i]) > t.Kth {
			nearer++
		}
	}
	seen := make(map[int]bool, len(got))
	found, tied := 0, 0
	for _, g := range got {
		if g < 0 || g >= len(data) || g == q.Exclude || seen[g] {
			continue
		}
		seen[g] = true
		switch s := dot(q.Vector, data[g]); {
		case s > t.Kth:
			found++
		case s == t.Kth:
			tied++
		}
	}
	return float64(found+min(tied, k-nearer)) / float64(k)
}

// Recall returns |got ∩ want| / |want|: the share of the exact neighbours an approximate search
// found. It is 1 when want is empty.
func Recall(got, want []string) float64 {
	if len(want) == 0 {
		return 1
	}
	in := make(map[string]bool, len(want))
	for _, w := range want {
		in[w] = true
	}
	n := 0
	for _, g := range got {
		if in[g] {
			n++
			delete(in, g)
		}
	}
	return float64(n) / float64(len(want))
}
