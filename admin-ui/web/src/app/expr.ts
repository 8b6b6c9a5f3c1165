// Helpers of the rule editor: a tokenizer for syntax highlighting of expr expressions and the
// completion of environment fields (GET /api/routing/environment).
export interface Token { text: string; cls: '' | 'str' | 'num' | 'kw' | 'op' | 'field' | 'fn' }
export interface Environment { session: { path: string; type: string }[]; agent: { path: string; type: string }[]; preferences: string[]; builtins: string[] }

const KEYWORDS = new Set(['true', 'false', 'nil', 'in', 'not', 'and', 'or', 'matches', 'contains', 'startsWith', 'endsWith', 'let'])

export function tokenize(src: string): Token[] {
  const out: Token[] = []
  const re = /("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|`[^`]*`?)|(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(==|!=|<=|>=|&&|\|\||[-+*/%<>!?:()[\],])|(\s+)|(.)/g
  let m: RegExpExecArray | null
  while ((m = re.exec(src))) {
    if (m[1] !== undefined) out.push({ text: m[1], cls: 'str' })
    else if (m[2] !== undefined) out.push({ text: m[2], cls: 'num' })
    else if (m[3] !== undefined) {
      const w = m[3]
      const next = src.slice(re.lastIndex).trimStart()[0]
      out.push({ text: w, cls: KEYWORDS.has(w) ? 'kw' : /^(session|agent)(\.|$)/.test(w) ? 'field' : next === '(' ? 'fn' : '' })
    } else if (m[4] !== undefined) out.push({ text: m[4], cls: 'op' })
    else out.push({ text: m[0], cls: '' })
  }
  return out
}

/** completions: the word being typed before the caret, and the fields or builtins it may become. */
export function completions(src: string, caret: number, env: Environment | null): { word: string; items: string[] } {
  const before = src.slice(0, caret)
  const m = /[A-Za-z_][A-Za-z0-9_.]*$/.exec(before)
  if (!m || !env) return { word: '', items: [] }
  const word = m[0]
  const all = [...env.session.map((f) => f.path), ...env.agent.map((f) => f.path), ...env.builtins]
  const items = all.filter((p) => p.startsWith(word) && p !== word)
  return { word, items: items.slice(0, 12) }
}

export function typeOf(env: Environment | null, path: string): string {
  if (!env) return ''
  return [...env.session, ...env.agent].find((f) => f.path === path)?.type || ''
}
