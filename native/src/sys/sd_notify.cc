// cmerge_sys: what Node cannot do itself and needs no BLAS. Node has no AF_UNIX SOCK_DGRAM
// sockets, which systemd's notify protocol requires.
#include <napi.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace {

// sdNotify(message): boolean. false when NOTIFY_SOCKET is unset; throws on a send error.
// One datagram, like sd_notify(3); a leading '@' names a socket in the abstract namespace.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "message must be a string");
  const std::string msg = info[0].As<Napi::String>().Utf8Value();
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return Napi::Boolean::New(env, false);

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = strlen(path);
  if (len >= sizeof(addr.sun_path)) throw Napi::Error::New(env, "NOTIFY_SOCKET path too long");
  memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  // Abstract names are not NUL-terminated: the address length says where they end.
  const socklen_t addrLen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));

  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Napi::Error::New(env, std::string("socket(AF_UNIX): ") + strerror(errno));
  // MSG_DONTWAIT: a stalled receiver must never block the event loop.
  const ssize_t sent = sendto(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                              reinterpret_cast<const sockaddr*>(&addr), addrLen);
  const int err = errno;
  close(fd);
  if (sent < 0) throw Napi::Error::New(env, std::string("sendto(NOTIFY_SOCKET=") + path + "): " + strerror(err));
  return Napi::Boolean::New(env, true);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
  return exports;
}

}  // namespace

NODE_API_MODULE(cmerge_sys, Init)
