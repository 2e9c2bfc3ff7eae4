import { z } from 'zod'
import { ValidationError } from '../errors.js'

export interface PostTypeField {
  slug: string
  name: string
  type: 'text' | 'textarea' | 'number' | 'boolean' | 'json' | 'datetime' | 'select'
  required?: boolean
  options?: string[]
}

export interface PostTypeDefinition {
  slug: string
  name: string
  description?: string
  icon?: string
  public?: boolean
  show_in_menu?: boolean
  fields?: PostTypeField[]
}

const fieldSchema = z.object({
  slug: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
  name: z.string().min(1).max(200),
  type: z.enum(['text', 'textarea', 'number', 'boolean', 'json', 'datetime', 'select']),
  required: z.boolean().optional(),
  options: z.array(z.string()).optional(),
})

const definitionSchema = z.object({
  slug: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'slug must be lowercase letters, digits, - or _'),
  name: z.string().min(1).max(200),
  description: z.string().max(2000).optional(),
  icon: z.string().max(64 * 1024).optional(),
  public: z.boolean().optional(),
  show_in_menu: z.boolean().optional(),
  fields: z.array(fieldSchema).optional(),
})

/** The post types of this process: registered once at start by providers and plugins. */
export class RegisterPostTypes {
  private readonly types = new Map<string, Readonly<PostTypeDefinition>>()

  register(definition: PostTypeDefinition): Readonly<PostTypeDefinition> {
    const parsed = definitionSchema.safeParse(definition)
    if (!parsed.success) {
      throw new ValidationError(`Invalid post type: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
    }
    const frozen = Object.freeze({ public: false, show_in_menu: true, fields: [], ...parsed.data })
    this.types.set(frozen.slug, frozen)
    return frozen
  }

  get(slug: string): Readonly<PostTypeDefinition> | undefined {
    return this.types.get(slug)
  }

  has(slug: string): boolean {
    return this.types.has(slug)
  }

  list(): Readonly<PostTypeDefinition>[] {
    return [...this.types.values()]
  }
}
