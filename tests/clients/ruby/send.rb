# Sends one message through the gateway with the Ruby `mail` gem's SMTP delivery: what ActionMailer uses.
# Usage: ruby send.rb '<json job>'. Prints the server's last reply; exits 1 with the error on stderr.
require "json"
require "base64"
require "mail"

job = JSON.parse(ARGV[0])
mail = Mail.new do
  from    "#{job["from"][0]} <#{job["from"][1]}>"
  to      job["to"]
  cc      job["cc"]
  subject job["subject"]
  job["headers"].each { |name, value| header[name] = value }
  text_part do
    content_type "text/plain; charset=UTF-8"
    body job["text"]
  end
  html_part do
    content_type "text/html; charset=UTF-8"
    body job["html"]
  end
end
mail.charset = "UTF-8"
job["attachments"].each do |a|
  mail.attachments[a["filename"]] = { mime_type: a["content_type"], content: Base64.decode64(a["content_b64"]) }
end
mail.smtp_envelope_from = job["mail_from"]
mail.smtp_envelope_to = job["rcpt_tos"]
mail.delivery_method :smtp,
  address: job["host"], port: job["port"], domain: "client.test",
  user_name: job["username"], password: job["password"],
  authentication: job["mechanism"].downcase.to_sym,
  enable_starttls_auto: !job["implicit_tls"], tls: job["implicit_tls"],
  openssl_verify_mode: "peer", ca_file: job["ca_file"],
  return_response: true

begin
  response = mail.deliver!
  puts(response.respond_to?(:string) ? response.string : response.to_s)
rescue StandardError => e
  warn "#{e.class}: #{e.message}"
  exit 1
end
