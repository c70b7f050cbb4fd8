package proxy

// The protocol's vocabulary: the type byte of each message, one type per
// direction, so that a byte that names different messages in the two
// directions ('D' is Describe from the client and DataRow from the server;
// 'S' is Sync, ParameterStatus, and the statement kind of Describe and
// Close) cannot be confused for the other. Names are those of the protocol
// documentation (PostgreSQL's "Message Formats").

// clientMsg is the type of a message the client (frontend) sends.
type clientMsg byte

const (
	clientQuery        clientMsg = 'Q'
	clientParse        clientMsg = 'P'
	clientBind         clientMsg = 'B'
	clientDescribe     clientMsg = 'D'
	clientExecute      clientMsg = 'E'
	clientClose        clientMsg = 'C'
	clientSync         clientMsg = 'S'
	clientFlush        clientMsg = 'H'
	clientFunctionCall clientMsg = 'F'
	clientCopyData     clientMsg = 'd'
	clientCopyDone     clientMsg = 'c'
	clientCopyFail     clientMsg = 'f'
	clientTerminate    clientMsg = 'X'
	// clientAuthResponse is PasswordMessage, SASLInitialResponse,
	// SASLResponse and GSSResponse: one type byte for all.
	clientAuthResponse clientMsg = 'p'
)

// serverMsg is the type of a message the server (backend) sends.
type serverMsg byte

const (
	serverAuthentication           serverMsg = 'R'
	serverBackendKeyData           serverMsg = 'K'
	serverParameterStatus          serverMsg = 'S'
	serverReadyForQuery            serverMsg = 'Z'
	serverParseComplete            serverMsg = '1'
	serverBindComplete             serverMsg = '2'
	serverCloseComplete            serverMsg = '3'
	serverRowDescription           serverMsg = 'T'
	serverNoData                   serverMsg = 'n'
	serverParameterDescription     serverMsg = 't'
	serverDataRow                  serverMsg = 'D'
	serverCommandComplete          serverMsg = 'C'
	serverEmptyQueryResponse       serverMsg = 'I'
	serverPortalSuspended          serverMsg = 's'
	serverErrorResponse            serverMsg = 'E'
	serverNoticeResponse           serverMsg = 'N'
	serverNotificationResponse     serverMsg = 'A'
	serverFunctionCallResponse     serverMsg = 'V'
	serverCopyInResponse           serverMsg = 'G'
	serverCopyOutResponse          serverMsg = 'H'
	serverCopyBothResponse         serverMsg = 'W'
	serverNegotiateProtocolVersion serverMsg = 'v'
)

// objectKind is what a Describe or Close names: a prepared statement or a
// portal.
type objectKind byte

const (
	objectStatement objectKind = 'S'
	objectPortal    objectKind = 'P'
)

// txState is the transaction status a ReadyForQuery reports.
type txState byte

const (
	txIdle    txState = 'I' // not in a transaction block
	txInBlock txState = 'T' // in a transaction block
	txFailed  txState = 'E' // in a failed transaction block
)

// Authentication request codes (the int32 after an Authentication
// message's type and length).
const (
	authOK                = 0
	authCleartextPassword = 3
	authMD5Password       = 5
	authSASL              = 10
	authSASLContinue      = 11
	authSASLFinal         = 12
)

// The one-byte answers to SSLRequest and GSSENCRequest.
const (
	encryptionAccepted byte = 'S'
	encryptionRefused  byte = 'N'
)

// Fields of an ErrorResponse or NoticeResponse that pgcloak reads.
const errFieldCode = 'C' // the SQLSTATE

// terminateMsg is a whole Terminate message.
var terminateMsg = []byte{byte(clientTerminate), 0, 0, 0, 4}
