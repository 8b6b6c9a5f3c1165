// Package archive owns object storage (the cold tier and uploaded files) and, in later work, the
// Store Scheduler that moves history hot → warm → cold, the cold-history reader and search.
//
// Invariant: a blob key names exactly one immutable object; keys are made by the caller, never
// derived from user-supplied file names.
package archive
