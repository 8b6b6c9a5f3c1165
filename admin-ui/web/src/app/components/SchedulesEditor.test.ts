import { describe, it, expect } from 'vitest'
import { mount, flushPromises } from '@vue/test-utils'
import SchedulesEditor, { type Schedule } from './SchedulesEditor.vue'
import { setLang } from '../i18n'
import { ApiError } from '../../shared/api'

const versions = [{ number: 2, comment: 'night' }, { number: 3, comment: 'weekend' }]

function make(schedules: Schedule[], save: (l: Schedule[]) => Promise<void>) {
  setLang('en')
  return mount(SchedulesEditor, { props: { schedules, versions, timeZone: 'Asia/Shanghai', save } })
}

describe('SchedulesEditor', () => {
  it('shows windows and cron rows in the shop time zone and sends them as the API objects', async () => {
    const sent: Schedule[][] = []
    const w = make([{ version: 2, time_zone: 'Asia/Shanghai', start: '2026-11-10T20:00', end: '2026-11-12T02:00' }], async (l) => { sent.push(l) })
    expect(w.find('[data-testid="sched-tz"]').text()).toContain('Asia/Shanghai')
    expect((w.find('[data-testid="sched-start-0"]').element as HTMLInputElement).value).toBe('2026-11-10T20:00')
    await w.find('[data-testid="sched-add-cron"]').trigger('click')
    await w.find('[data-testid="sched-cron-1"]').setValue('0 22 * * *')
    await w.find('[data-testid="sched-duration-1"]').setValue('8h')
    await w.find('[data-testid="sched-version-1"]').setValue('3')
    await w.find('[data-testid="sched-save"]').trigger('click')
    await flushPromises()
    expect(sent).toEqual([[
      { version: 2, time_zone: 'Asia/Shanghai', start: '2026-11-10T20:00', end: '2026-11-12T02:00' },
      { version: 3, time_zone: 'Asia/Shanghai', cron: '0 22 * * *', duration: '8h' },
    ]])
    expect(w.find('[data-testid="sched-saved"]').exists()).toBe(true)
  })

  it('shows the server\'s overlap error on the row it concerns and marks the other one', async () => {
    const w = make([], async () => {
      throw new ApiError(400, 'EINVALID', 'invalid schedules', [{ schedule: 1, other: 0, message: 'version 3 overlaps schedule 0' }])
    })
    await w.find('[data-testid="sched-add-window"]').trigger('click')
    await w.find('[data-testid="sched-add-window"]').trigger('click')
    for (const i of [0, 1]) {
      await w.find(`[data-testid="sched-start-${i}"]`).setValue('2026-12-01T08:00')
      await w.find(`[data-testid="sched-end-${i}"]`).setValue('2026-12-01T20:00')
    }
    await w.find('[data-testid="sched-save"]').trigger('click')
    await flushPromises()
    expect(w.find('[data-testid="sched-1"] [data-testid="sched-error"]').text()).toBe('version 3 overlaps schedule 0')
    expect(w.find('[data-testid="sched-0"] [data-testid="sched-error"]').exists()).toBe(false)
    expect(w.find('[data-testid="sched-0"]').classes()).toContain('other')
    expect(w.find('[data-testid="sched-saved"]').exists()).toBe(false)
  })

  it('reports a row missing its times without calling the server, and removes rows', async () => {
    let calls = 0
    const w = make([], async () => { calls++ })
    await w.find('[data-testid="sched-add-window"]').trigger('click')
    await w.find('[data-testid="sched-save"]').trigger('click')
    await flushPromises()
    expect(calls).toBe(0)
    expect(w.find('[data-testid="sched-0"] [data-testid="sched-error"]').text()).toBe('a window needs a start and an end')
    await w.find('[data-testid="sched-remove-0"]').trigger('click')
    await w.find('[data-testid="sched-save"]').trigger('click')
    await flushPromises()
    expect(calls).toBe(1)
  })
})
