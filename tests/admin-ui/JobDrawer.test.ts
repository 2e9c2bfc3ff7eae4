import { mount, type VueWrapper } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createApiClient } from '../../admin-ui/src/api/client'
import JobDrawer from '../../admin-ui/src/components/JobDrawer.vue'
import type { Jobpost } from '../../core/createJobpost'
import { UnrecoverableError } from '../../core/errors'
import { eventually, startJobpost, userWithRole } from '../support/harness'
import { PAGE_ORIGIN } from './support'

let jobpost: (Jobpost & { url: string }) | undefined
let wrapper: VueWrapper | undefined

afterEach(async () => {
  wrapper?.unmount()
  wrapper = undefined
  await jobpost?.close({ graceMs: 100 })
  jobpost = undefined
})

describe('JobDrawer.vue, the job detail drawer, on a real server', () => {
  it('shows a batch’s facts, result and per-item table from its export, errors included, all as text', async () => {
    jobpost = await startJobpost({ corsOrigins: [PAGE_ORIGIN], runWorker: true })
    const admin = await userWithRole(jobpost, 'administrator')
    const hooks = jobpost.pluginHooks('media-plugin')
    hooks.registerBatchProcessor(
      'resize-images',
      (item) => {
        if (item.id === 'b') throw new UnrecoverableError('<b>image b</b> is not an image')
        return { width: 640 }
      },
      { itemMaxAttempts: 1 },
    )
    const queued = await hooks.enqueueBatch({
      type: 'resize-images',
      name: 'Resize images',
      items: [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
      metadata: { folder: '/uploads' },
      createdBy: admin.id,
    })
    const api = createApiClient({ baseUrl: jobpost.url, getToken: () => admin.token })
    const job = (await eventually(async () => {
      const current = await api.getJob(queued.jobId)
      return ['completed', 'completed_with_errors', 'failed'].includes(current.status) ? current : null
    }))!

    const onClose = vi.fn()
    wrapper = mount(JobDrawer, { props: { job, api, onClose }, attachTo: document.body })
    await vi.waitFor(() => expect(wrapper!.find('[data-test="items"]').exists()).toBe(true))

    expect(wrapper.find('#drawer-title').text()).toBe('Resize images')
    expect(wrapper.find('[data-test="metadata"]').text()).toContain('"folder": "/uploads"')
    expect(wrapper.find('[data-test="result"]').text()).toBe(job.result === null ? '—' : JSON.stringify(job.result, null, 2))
    expect(wrapper.text()).toContain(`${job.attempts} of ${job.maxAttempts}`)

    const table = wrapper.find('[data-test="items"]')
    const headers = table.findAll('th').map((th) => th.text())
    // Headings for people, not the export's keys.
    expect(headers).toEqual(['#', 'Item', 'Status', 'Attempts', 'Error', 'Result', 'Started', 'Finished'])
    const rows = table.findAll('tbody tr')
    expect(rows).toHaveLength(3)
    const cellOf = (row: number, column: string) => rows[row]!.findAll('td')[headers.indexOf(column)]!.text()
    expect(rows.map((_, i) => cellOf(i, 'Item'))).toEqual(['a', 'b', 'c'])
    expect(cellOf(1, 'Error')).toBe('<b>image b</b> is not an image')
    expect(table.find('b').exists()).toBe(false)
    expect(cellOf(0, 'Result')).toBe('{"width":640}')
    // Exports are offered, since there are items.
    expect(wrapper.find('[data-test="export-csv"]').exists()).toBe(true)

    // The status filter narrows the items to the failed one.
    const statusSelect = wrapper.find('[data-test="item-status"]')
    expect(statusSelect.findAll('option').map((o) => o.text())).toEqual(['All 3', 'Completed (2)', 'Failed (1)'])
    await statusSelect.setValue('failed')
    expect(wrapper.findAll('[data-test="items"] tbody tr').map((tr) => tr.attributes('data-status'))).toEqual(['failed'])

    // Escape closes it, wherever the focus is.
    document.body.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }))
    expect(onClose).toHaveBeenCalledTimes(1)
  })

  it('says when a job has no items, and shows a failed job’s error', async () => {
    jobpost = await startJobpost({ corsOrigins: [PAGE_ORIGIN] })
    const admin = await userWithRole(jobpost, 'administrator')
    const handle = await jobpost.pluginHooks('sync-plugin').createJob({ name: 'Sync', type: 'sync', createdBy: admin.id })
    await handle.start()
    await handle.fail('API timeout')
    const api = createApiClient({ baseUrl: jobpost.url, getToken: () => admin.token })
    wrapper = mount(JobDrawer, { props: { job: await api.getJob(handle.jobId), api }, attachTo: document.body })
    await vi.waitFor(() => expect(wrapper!.text()).toContain('This job has no items.'))
    expect(wrapper.find('[data-test="drawer-error"]').text()).toBe('API timeout')
    // No items: nothing to export, so no export buttons.
    expect(wrapper.find('[data-test="export-csv"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="export-json"]').exists()).toBe(false)
    // Focus starts on the close button, for keyboard users.
    expect(document.activeElement?.getAttribute('aria-label')).toBe('Close details')
  })

  it('pages a batch of 120 items 50 at a time, offers the actions it is given, and emits the one chosen', async () => {
    jobpost = await startJobpost({ corsOrigins: [PAGE_ORIGIN], runWorker: true })
    const admin = await userWithRole(jobpost, 'administrator')
    const hooks = jobpost.pluginHooks('media-plugin')
    hooks.registerBatchProcessor('touch', () => ({ ok: true }), { itemMaxAttempts: 1 })
    const queued = await hooks.enqueueBatch({
      type: 'touch',
      name: 'Touch files',
      items: Array.from({ length: 120 }, (_, i) => ({ id: `f${i}` })),
      createdBy: admin.id,
    })
    const api = createApiClient({ baseUrl: jobpost.url, getToken: () => admin.token })
    const job = (await eventually(async () => {
      const current = await api.getJob(queued.jobId)
      return current.status === 'completed' ? current : null
    }))!
    const onAction = vi.fn()
    wrapper = mount(JobDrawer, {
      props: { job, api, actions: ['retry', 'delete'], actionLabels: { retry: 'Retry', delete: 'Delete' }, onAction },
      attachTo: document.body,
    })
    await vi.waitFor(() => expect(wrapper!.find('[data-test="items-range"]').exists()).toBe(true))
    expect(wrapper.find('[data-test="items-range"]').text()).toBe('1–50 of 120')
    expect(wrapper.findAll('[data-test="items"] tbody tr')).toHaveLength(50)
    await wrapper.find('[data-test="items-next"]').trigger('click')
    await wrapper.find('[data-test="items-next"]').trigger('click')
    expect(wrapper.find('[data-test="items-range"]').text()).toBe('101–120 of 120')
    expect(wrapper.findAll('[data-test="items"] tbody tr')).toHaveLength(20)

    expect(wrapper.findAll('.drawer__actions button').map((b) => b.text())).toEqual(['Retry', 'Delete'])
    await wrapper.find('[data-test="drawer-action-retry"]').trigger('click')
    expect(onAction).toHaveBeenCalledWith('retry')
  })
})
