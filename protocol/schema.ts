/**
 * Compiled TypeBox schemas that throw our typed error naming the first offending field.
 */
import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { RbqError } from './errors.js'

export interface Checker<T extends TSchema> {
  readonly schema: T
  /** Returns the value typed, or throws SCHEMA_INVALID naming `<root>.<path>`. */
  check(value: unknown, root: string): Static<T>
}

/** `/envelope/signatures/0/sig` → `envelope.signatures[0].sig` */
export function fieldOf(root: string, pointer: string): string {
  let out = root
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~')
    out += /^\d+$/.test(key) ? `[${key}]` : out === '' ? key : `.${key}`
  }
  return out
}

export function compileSchema<T extends TSchema>(schema: T): Checker<T> {
  const compiled = TypeCompiler.Compile(schema)
  return {
    schema,
    check(value: unknown, root: string): Static<T> {
      if (compiled.Check(value)) return value
      const first = compiled.Errors(value).First()
      const field = fieldOf(root, first?.path ?? '')
      const what = first === undefined ? 'does not match the schema' : first.message.toLowerCase()
      throw new RbqError('SCHEMA_INVALID', `${field || 'value'}: ${what}`, { field })
    }
  }
}
