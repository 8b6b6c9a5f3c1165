// History and gap sync over REST (GET /api/conversations/:id/messages), shared by the workspace
// and the widget.
import type { Api } from './api'
import type { Message } from './types'
import type { Thread } from './thread'

const PAGE = 200

/** pullAfter fetches every message above the thread's cursor, page after page. */
export async function pullAfter(api: Api, convId: number, thread: Thread): Promise<boolean> {
  let changed = false
  for (let i = 0; i < 50; i++) {
    const after = thread.cursor
    const r = await api.get<{ messages: Message[] }>(`/api/conversations/${convId}/messages?after=${after}&limit=${PAGE}`)
    if (thread.add(r.messages)) changed = true
    if (r.messages.length < PAGE || thread.cursor === after) break
  }
  return changed
}

/** loadLatest loads the newest page of a conversation whose thread is still empty. */
export async function loadLatest(api: Api, convId: number, lastSeq: number, thread: Thread, limit = 30): Promise<void> {
  if (lastSeq <= 0) return
  const r = await api.get<{ messages: Message[] }>(`/api/conversations/${convId}/messages?before=${lastSeq + 1}&limit=${limit}`)
  thread.add(r.messages)
}

/** loadOlder pages backwards from the oldest loaded message; returns how many arrived. */
export async function loadOlder(api: Api, convId: number, thread: Thread, limit = 30): Promise<number> {
  if (thread.oldest <= 1) return 0
  const r = await api.get<{ messages: Message[] }>(`/api/conversations/${convId}/messages?before=${thread.oldest}&limit=${limit}`)
  thread.add(r.messages)
  return r.messages.length
}
