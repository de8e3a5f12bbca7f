// libqrencode (Debian libqrencode-dev) for `gatehouse mfa`: the TOTP
// enrolment URI is shown as a QR code on the operator's terminal. The real
// header is imported unchanged; the encoder is libqrencode's, not ours.
#ifndef GATEHOUSE_CQRENCODE_SHIM_H
#define GATEHOUSE_CQRENCODE_SHIM_H

#include <qrencode.h>

#endif
