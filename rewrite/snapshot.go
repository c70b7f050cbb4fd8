package rewrite

import "github.com/pgcloak/pgcloak/catalog"

// The rewriter resolves names against a snapshot of the database's catalog
// (package catalog, which the engine loads and refreshes); these are its
// names for the snapshot's types.
type (
	Catalog     = catalog.Catalog
	Relation    = catalog.Relation
	Column      = catalog.Column
	UniqueIndex = catalog.UniqueIndex
)
