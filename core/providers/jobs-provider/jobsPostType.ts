import type { PostTypeDefinition } from '../../registry/RegisterPostTypes.js'

/** The `jobs` post type: the fields every job carries as post meta. */
export const jobsPostType: PostTypeDefinition = {
  slug: 'jobs',
  name: 'Jobs',
  description: 'Background jobs: tracked by plugins or run by processors.',
  icon: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path d="M4 6h16v2H4zm0 5h16v2H4zm0 5h10v2H4z"/></svg>',
  public: false,
  show_in_menu: true,
  fields: [
    { slug: 'job_id', name: 'Job ID', type: 'text', required: true },
    { slug: 'name', name: 'Name', type: 'text', required: true },
    { slug: 'description', name: 'Description', type: 'textarea' },
    { slug: 'type', name: 'Type', type: 'text', required: true },
    {
      slug: 'status',
      name: 'Status',
      type: 'select',
      options: ['pending', 'running', 'paused', 'completed', 'completed_with_errors', 'failed', 'cancelled'],
    },
    { slug: 'progress', name: 'Progress', type: 'number' },
    { slug: 'icon_svg', name: 'Icon (SVG)', type: 'textarea' },
    { slug: 'metadata', name: 'Metadata', type: 'json' },
    { slug: 'error_message', name: 'Error message', type: 'textarea' },
    { slug: 'result', name: 'Result', type: 'json' },
    { slug: 'source', name: 'Source', type: 'text' },
    { slug: 'show_notification', name: 'Show notification', type: 'boolean' },
    { slug: 'timeout', name: 'Timeout (ms)', type: 'number' },
    { slug: 'priority', name: 'Priority', type: 'number' },
    { slug: 'attempts', name: 'Attempts', type: 'number' },
    { slug: 'max_attempts', name: 'Max attempts', type: 'number' },
    { slug: 'run_at', name: 'Run at', type: 'datetime' },
    { slug: 'started_at', name: 'Started at', type: 'datetime' },
    { slug: 'completed_at', name: 'Completed at', type: 'datetime' },
    { slug: 'data', name: 'Payload', type: 'json' },
    { slug: 'parent_job_id', name: 'Parent job', type: 'text' },
  ],
}
