// The official tus server (@tus/server with @tus/file-store) for the upload tests.
// Usage: node server.mjs PORT DIRECTORY
// Prints one line "listening http://127.0.0.1:PORT/files/" once it accepts requests.
import http from 'node:http';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const [port, directory] = process.argv.slice(2);
if (!port || !directory) {
  console.error('usage: node server.mjs PORT DIRECTORY');
  process.exit(2);
}

const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${port}/files/`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
