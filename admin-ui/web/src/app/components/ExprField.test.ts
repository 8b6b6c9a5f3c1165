import { describe, it, expect } from 'vitest'
import { mount } from '@vue/test-utils'
import ExprField from './ExprField.vue'
import { tokenize, completions, type Environment } from '../expr'

const env: Environment = {
  session: [{ path: 'session.kind', type: 'string' }, { path: 'session.buyer.tier', type: 'string' }, { path: 'session.buyer.tags', type: '[]string' }],
  agent: [{ path: 'agent.status', type: 'string' }, { path: 'agent.groups', type: '[]string' }, { path: 'agent.skills', type: '[]string' }],
  preferences: ['least_load_ratio'], builtins: ['len', 'lower'],
}

describe('rule expressions', () => {
  it('tokenizes fields, strings, keywords and operators for highlighting', () => {
    const tk = tokenize('"vip" in session.buyer.tags && agent.status == "online"')
    const by = (cls: string) => tk.filter((x) => x.cls === cls).map((x) => x.text)
    expect(by('str')).toEqual(['"vip"', '"online"'])
    expect(by('kw')).toEqual(['in'])
    expect(by('field')).toEqual(['session.buyer.tags', 'agent.status'])
    expect(by('op')).toEqual(['&&', '=='])
    expect(tk.map((x) => x.text).join('')).toBe('"vip" in session.buyer.tags && agent.status == "online"')
  })
  it('completes environment fields from the word before the caret', () => {
    expect(completions('agent.s', 7, env).items).toEqual(['agent.status', 'agent.skills'])
    expect(completions('"x" in session.bu', 17, env).items).toEqual(['session.buyer.tier', 'session.buyer.tags'])
    expect(completions('agent.status == "', 17, env).items).toEqual([])
    expect(completions('le', 2, env).items).toEqual(['len'])
  })
})

describe('ExprField', () => {
  it('shows the server validation error inline', () => {
    const w = mount(ExprField, { props: { modelValue: 'agent.grups', env, error: { line: 1, column: 7, message: 'type rules.Agent has no field grups' } } })
    expect(w.find('[data-testid="expr-error"]').text()).toBe('1:7 type rules.Agent has no field grups')
    expect(w.classes()).toContain('invalid')
  })
  it('highlights what is typed and completes a field with Tab', async () => {
    const w = mount(ExprField, { props: { modelValue: '', env, 'onUpdate:modelValue': (v: string) => w.setProps({ modelValue: v }) } })
    const ta = w.find('textarea')
    await ta.trigger('focus')
    ;(ta.element as HTMLTextAreaElement).value = 'agent.gr'
    ;(ta.element as HTMLTextAreaElement).setSelectionRange(8, 8)
    await ta.trigger('input')
    expect(w.findAll('[data-testid="completions"] li').map((l) => l.text())).toEqual(['agent.groups []string'])
    await ta.trigger('keydown', { key: 'Tab' })
    expect(w.props('modelValue')).toBe('agent.groups')
    expect(w.find('.tk-field').text()).toBe('agent.groups')
  })
})
