package engine

// SnapshotShapeStats counts the shape cache's hits, misses and lookups of
// unshared shapes in the catalog snapshot in force (shapecache_test.go).
func (e *Engine) SnapshotShapeStats() (hits, misses, unshared int64) {
	st := e.state.Load()
	if st == nil {
		return 0, 0, 0
	}
	return st.shapes.Counts()
}
