// ESLint flat config. The import rules encode the dependency direction of docs/architecture.md:
// cli → daemon → merge → methods → engine, with config, io, store, publish and util beside.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

/**
 * Layers each folder of src/ must not import from (a later stage, or one it should not know).
 * report (the HTML report) reads store and util; only cli and daemon use it.
 */
const forbidden = {
  util: ['cli', 'daemon', 'merge', 'methods', 'engine', 'io', 'store', 'publish', 'config', 'demo', 'report'],
  engine: ['cli', 'daemon', 'merge', 'methods', 'io', 'store', 'publish', 'config', 'demo', 'report'],
  methods: ['cli', 'daemon', 'merge', 'io', 'store', 'publish', 'config', 'demo', 'report'],
  merge: ['cli', 'daemon', 'store', 'publish', 'config', 'demo', 'report'],
  io: ['cli', 'daemon', 'merge', 'methods', 'engine', 'store', 'publish', 'config', 'demo', 'report'],
  store: ['cli', 'daemon', 'merge', 'methods', 'engine', 'io', 'publish', 'config', 'demo', 'report'],
  publish: ['cli', 'daemon', 'merge', 'methods', 'engine', 'config', 'demo', 'report'],
  config: ['cli', 'daemon', 'merge', 'io', 'store', 'publish', 'demo', 'report'],
  demo: ['cli', 'daemon', 'merge', 'methods', 'engine', 'store', 'publish', 'config', 'report'],
  daemon: ['cli'],
  report: ['cli', 'daemon', 'merge', 'methods', 'engine', 'io', 'publish', 'config', 'demo'],
};

/** Layers a folder may take types from but no code (the record shapes the store keeps). */
const typesOnly = { publish: ['store'] };

const layerRules = Object.entries(forbidden).map(([layer, layers]) => ({
  files: [`src/${layer}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: `^(\\.\\./)+(${layers.join('|')})/`,
            message: `src/${layer} must not depend on this layer (see docs/architecture.md, "Dependencies")`,
          },
          ...(typesOnly[layer] ?? []).map((other) => ({
            regex: `^(\\.\\./)+${other}/`,
            allowTypeImports: true,
            message: `src/${layer} may import only types from src/${other} (docs/architecture.md, "Dependencies")`,
          })),
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'demo/**', 'native/build/**', 'state/**', '.gpu/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        fetch: 'readonly',
        performance: 'readonly',
        TextDecoder: 'readonly',
        TextEncoder: 'readonly',
        queueMicrotask: 'readonly',
        structuredClone: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      // a function longer than a screen hides its steps; split it into named ones
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true }],
    },
  },
  ...layerRules,
  prettier,
);
