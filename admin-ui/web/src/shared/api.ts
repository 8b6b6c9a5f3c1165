// A small REST client for docs/protocol.md: JSON in and out, errors shaped {error:{code,message}}.
export class ApiError extends Error {
  /** details are the itemised problems of a rejected request (the error's "errors"), when given. */
  constructor(public status: number, public code: string, message: string, public details: any[] = []) { super(message) }
}

export interface ApiOptions { base: string; token: () => string; shop?: string }

export class Api {
  constructor(public opts: ApiOptions) {}

  headers(json = true): Record<string, string> {
    const h: Record<string, string> = {}
    if (json) h['Content-Type'] = 'application/json'
    const t = this.opts.token()
    if (t) h['Authorization'] = 'Bearer ' + t
    if (this.opts.shop) h['X-Shop'] = this.opts.shop
    return h
  }

  async req<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response
    try {
      res = await fetch(this.opts.base + path, {
        method, headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit',
      })
    } catch (e) {
      throw new ApiError(0, 'ENETWORK', 'network error')
    }
    const text = await res.text()
    let data: any = {}
    try { data = text ? JSON.parse(text) : {} } catch { data = {} }
    if (!res.ok) {
      throw new ApiError(res.status, data?.error?.code || 'EHTTP', data?.error?.message || res.statusText, Array.isArray(data?.error?.errors) ? data.error.errors : [])
    }
    return data as T
  }

  get<T = any>(path: string) { return this.req<T>('GET', path) }
  post<T = any>(path: string, body: unknown = {}) { return this.req<T>('POST', path, body) }

  async upload(file: Blob, name: string): Promise<{ blob_key: string; type: 'image' | 'file'; name: string; mime: string; size: number; url: string }> {
    const fd = new FormData()
    fd.append('file', file, name)
    let res: Response
    try {
      res = await fetch(this.opts.base + '/api/uploads', { method: 'POST', headers: this.headers(false), body: fd, credentials: 'omit' })
    } catch {
      throw new ApiError(0, 'ENETWORK', 'network error')
    }
    const data = await res.json().catch(() => ({}))
    if (!res.ok) throw new ApiError(res.status, data?.error?.code || 'EHTTP', data?.error?.message || res.statusText)
    return data
  }

  /** blobURL fetches an upload with the caller's token and returns an object URL for <img>/<a>. */
  async blobURL(key: string): Promise<string> {
    const res = await fetch(this.opts.base + '/api/blobs/' + key, { headers: this.headers(false), credentials: 'omit' })
    if (!res.ok) throw new ApiError(res.status, 'EHTTP', res.statusText)
    return URL.createObjectURL(await res.blob())
  }
}

let counter = 0
/** clientMsgID makes a client_msg_id unique per device: time, a random part and a counter. */
export function clientMsgID(prefix: string): string {
  counter++
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${counter}`
}
