package web

import (
	"container/list"
	"sync"
)

// queryCache is a bounded LRU of query embeddings keyed by embedding space (spaceKey: its id,
// model, dimensions and template) and text. It is safe for concurrent use; a nil *queryCache
// caches nothing.
type queryCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used; values are *cacheEntry
	byKey map[cacheKey]*list.Element
}

type cacheKey struct{ space, text string }

type cacheEntry struct {
	key cacheKey
	vec []float32
}

// newQueryCache returns a cache of at most size entries; nil when size < 1.
func newQueryCache(size int) *queryCache {
	if size < 1 {
		return nil
	}
	return &queryCache{max: size, order: list.New(), byKey: make(map[cacheKey]*list.Element, size)}
}

// get returns the cached vector of (space, text). The slice is shared: callers must not
// modify it.
func (c *queryCache) get(space, text string) ([]float32, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[cacheKey{space, text}]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).vec, true
}

// put stores the vector of (space, text), evicting the least recently used entry when full.
func (c *queryCache) put(space, text string, vec []float32) {
	if c == nil {
		return
	}
	k := cacheKey{space, text}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[k]; ok {
		el.Value.(*cacheEntry).vec = vec
		c.order.MoveToFront(el)
		return
	}
	c.byKey[k] = c.order.PushFront(&cacheEntry{key: k, vec: vec})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*cacheEntry).key)
	}
}

// len returns the number of cached entries.
func (c *queryCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
