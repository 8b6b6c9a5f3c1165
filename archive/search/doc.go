// Package search is the message search index: every message of every shop, searchable by keyword
// (Chinese and English), shop, agent, buyer, session kind, conversation and time, with highlights and
// a link back to the conversation at the message's seq.
//
// Two implementations share one interface and one conformance suite: Bleve, the embedded default,
// in a directory on one node; and Elastic, Elasticsearch 7 for production.
package search
