// Package archive owns object storage (the cold tier and uploaded files), the Store Scheduler that
// runs the jobs moving history hot → warm → cold (with its run log, table job_runs), the cold segment
// format with its manifest, the job that archives warm messages into segments, and the reader of
// cold history.
//
// Invariants: a blob key names exactly one object and is made by the caller, never derived from
// user-supplied file names; a warm message is deleted only after the segment holding it has been read
// back, verified and recorded in the manifest, by a job that still holds its lease.
package archive
