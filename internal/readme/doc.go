// Package readme holds two tests of the repository's docs. The first,
// TestREADMESnippetsBuild, builds the README's Go snippets as a program
// against the root module alone (GOWORK=off), so that a snippet a user
// copies still compiles after the API it shows changes.
//
// Every block fenced ```go is built, each as the body of a function of its
// own; a fence that names Go otherwise (```golang) fails the test, and a
// block not meant to build takes another fence (```text). The packages the
// snippets name and the names they take from the program around them are
// in two tables in readme_test.go (snippetImports, snippetContext). The
// test compiles the snippets; it does not run them. It opens the root
// module's sources, so that go test does not reuse a cached pass after
// they change.
//
// The second, TestMarkdownWraps (markdown_test.go), checks that the
// repository's Markdown prose wraps at 120 characters.
package readme
