// Package search is the message search index: every message of every shop, searchable by keyword
// (Chinese and English), shop, agent, buyer, session kind, conversation and time, with highlights and
// a link back to the conversation at the message's seq.
//
// Two implementations share the Index interface and one conformance suite. Bleve is the embedded
// default: one directory on one node holding 16 bleve indexes, shops spread over them by id, so a
// query reads only its shop's shard; the cjk analyzer (bigrams for Chinese, words for English);
// Index returns once the batch is on disk. Elastic is Elasticsearch 7: documents go to monthly
// indices "<prefix>-YYYY.MM" (UTC month of the message) joined to the alias "<prefix>" by an index
// template that NewElastic puts at start; searches and deletions go through the alias. Monthly
// indices, not a rollover alias, because a document's index must follow from the message alone or a
// retried bulk request after a rollover would write a second copy. The text is analysed with IK
// (ik_max_word, searched with ik_smart) when every node has the plugin, else with cjk.
//
// Invariants: every query is filtered by one shop (there is no way to search across shops); a
// message has one document whose id is (shop, conversation, seq), so indexing is idempotent and the
// index job may rerun any batch. Order numbers, SKUs and phone numbers are also indexed as codes,
// exactly (keyword) and by n-grams of 3 to 20 characters, so a part of one matches too.
//
// Recalls: nothing is removed on recall. The recalled message is indexed again with Recalled set (as
// a manager's read of the history returns it) and stays searchable, marked.
package search
