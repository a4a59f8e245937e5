// Sends one message through the gateway with Nodemailer. Usage: node send.mjs '<json job>'
// Prints the server's final reply on stdout; exits 1 with the error on stderr.
import fs from "node:fs";
import nodemailer from "nodemailer";

const job = JSON.parse(process.argv[2]);
const transport = nodemailer.createTransport({
  host: job.host,
  port: job.port,
  secure: job.implicit_tls,
  requireTLS: !job.implicit_tls,
  auth: { user: job.username, pass: job.password, method: job.mechanism },
  tls: { ca: [fs.readFileSync(job.ca_file)], servername: "localhost" },
  connectionTimeout: 20000,
  socketTimeout: 60000,
});

try {
  const info = await transport.sendMail({
    envelope: { from: job.mail_from, to: job.rcpt_tos },
    from: job.from,
    to: job.to,
    cc: job.cc,
    subject: job.subject,
    text: job.text,
    html: job.html,
    headers: job.headers,
    attachments: job.attachments.map((a) => ({
      filename: a.filename,
      content: Buffer.from(a.content_b64, "base64"),
      contentType: a.content_type,
    })),
  });
  console.log(info.response);
} catch (err) {
  console.error(`${err.responseCode ?? ""} ${err.response ?? err.message}`);
  process.exit(1);
}
