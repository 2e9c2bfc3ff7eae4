/** The server's contract, imported as-is (it has no runtime dependencies): never redefine these types here. */
export * from '../../core/contract'
