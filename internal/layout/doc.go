// Package layout holds no code: its test checks that the repository's
// description of itself matches the tree. The import graph in
// docs/design.md §3 must be the one go list reports, and README's layout
// table must name every package of it, so that the documented design and
// the code cannot drift apart unnoticed.
package layout
