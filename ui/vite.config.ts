import { defineConfig } from "vitest/config";

// Preact's JSX through esbuild (tsconfig's jsxImportSource): no framework plugin needed.
export default defineConfig({
  base: "./",
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: { outDir: "dist", target: "es2022", emptyOutDir: true },
  test: { environment: "happy-dom", globals: true, include: ["src/**/*.test.{ts,tsx}"] },
});
