// Package readme holds the test that builds the README's Go snippets as a
// program against the root module alone (GOWORK=off), so that a snippet a
// user copies still compiles after the API it shows changes.
package readme
