<?php
// Sends one message through the gateway with PHPMailer (Debian's libphp-phpmailer).
// Usage: php send.php '<json job>'. Prints the last server reply; exits 1 with the error on stderr.
require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\Exception;

$job = json_decode($argv[1], true);
$mail = new PHPMailer(true);
$mail->isSMTP();
$mail->Host = $job['host'];
$mail->Port = $job['port'];
$mail->SMTPSecure = $job['implicit_tls'] ? PHPMailer::ENCRYPTION_SMTPS : PHPMailer::ENCRYPTION_STARTTLS;
$mail->SMTPAutoTLS = false;
$mail->SMTPAuth = true;
$mail->AuthType = $job['mechanism'];
$mail->Username = $job['username'];
$mail->Password = $job['password'];
$mail->Hostname = 'client.test';
$mail->CharSet = PHPMailer::CHARSET_UTF8;
$mail->Timeout = 30;
$mail->SMTPOptions = ['ssl' => ['cafile' => $job['ca_file'], 'peer_name' => 'localhost', 'verify_peer' => true]];
$mail->Sender = $job['mail_from'];
[$fromName, $fromEmail] = [$job['from'][0], $job['from'][1]];
$mail->setFrom($fromEmail, $fromName, false);
foreach ($job['to_addresses'] as $to) { $mail->addAddress($to[1], $to[0]); }
foreach ($job['cc_addresses'] as $cc) { $mail->addCC($cc[1], $cc[0]); }
foreach ($job['bcc_addresses'] as $bcc) { $mail->addBCC($bcc); }
foreach ($job['headers'] as $name => $value) { $mail->addCustomHeader($name, $value); }
$mail->Subject = $job['subject'];
$mail->isHTML(true);
$mail->Body = $job['html'];
$mail->AltBody = $job['text'];
foreach ($job['attachments'] as $a) {
    $mail->addStringAttachment(base64_decode($a['content_b64']), $a['filename'], PHPMailer::ENCODING_BASE64, $a['content_type']);
}
try {
    $mail->send();
    $smtp = $mail->getSMTPInstance();
    echo $smtp->getLastReply();
} catch (Exception $e) {
    fwrite(STDERR, $mail->ErrorInfo . "\n");
    exit(1);
}
